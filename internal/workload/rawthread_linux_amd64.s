#include "textflag.h"

// func cloneReader(flags, stackTop, tidAddr, fd, buf, result uintptr) (ret int64)
//
// The child runs only the instructions below: read(fd, buf, 1), store what
// read returned at result, exit(0). It never touches its stack or Go state.
TEXT ·cloneReader(SB),NOSPLIT|NOFRAME,$0-56
	MOVQ	flags+0(FP), DI
	MOVQ	stackTop+8(FP), SI
	MOVQ	tidAddr+16(FP), DX	// parent_tid
	MOVQ	tidAddr+16(FP), R10	// child_tid
	MOVQ	$0, R8			// tls
	// The child gets a copy of the registers; syscalls keep all but
	// AX, CX and R11.
	MOVQ	fd+24(FP), R12
	MOVQ	buf+32(FP), R13
	MOVQ	result+40(FP), R9
	MOVQ	$56, AX			// SYS_clone
	SYSCALL
	CMPQ	AX, $0
	JEQ	child
	MOVQ	AX, ret+48(FP)
	RET

child:
	MOVQ	R12, DI
	MOVQ	R13, SI
	MOVQ	$1, DX
	MOVQ	$0, AX			// SYS_read
	SYSCALL
	MOVQ	AX, 0(R9)
	MOVQ	$0, DI
	MOVQ	$60, AX			// SYS_exit: this thread only
	SYSCALL
	JMP	-3(PC)

// func cloneSpinner(flags, stackTop, tidAddr, stop, count uintptr) (ret int64)
//
// The child spins in user space until the 32-bit word at stop is not
// zero, counting rounds, then stores the count at count and exits. Until
// then it makes no syscall at all; PAUSE only eases the spin for a
// sibling hyperthread.
TEXT ·cloneSpinner(SB),NOSPLIT|NOFRAME,$0-48
	MOVQ	flags+0(FP), DI
	MOVQ	stackTop+8(FP), SI
	MOVQ	tidAddr+16(FP), DX	// parent_tid
	MOVQ	tidAddr+16(FP), R10	// child_tid
	MOVQ	$0, R8			// tls
	MOVQ	stop+24(FP), R12
	MOVQ	count+32(FP), R9
	MOVQ	$56, AX			// SYS_clone
	SYSCALL
	CMPQ	AX, $0
	JEQ	spinner
	MOVQ	AX, ret+40(FP)
	RET

spinner:
	XORQ	BX, BX
spin:
	INCQ	BX
	PAUSE
	MOVL	0(R12), AX
	TESTL	AX, AX
	JEQ	spin
	MOVQ	BX, 0(R9)
	MOVQ	$0, DI
	MOVQ	$60, AX			// SYS_exit: this thread only
	SYSCALL
	JMP	-3(PC)

// func cloneToucher(flags, stackTop, tidAddr, addr, pages, stride, result uintptr) (ret int64)
//
// The child makes one getppid(2), so that a syscall tracer has seen it,
// then loads one byte from each of pages pages, stride bytes apart from
// addr on, with plain MOVBs: a page that is not there is faulted in by the
// kernel, outside any syscall. It stores the sum of the bytes at result
// and exits. It never touches its stack or Go state.
TEXT ·cloneToucher(SB),NOSPLIT|NOFRAME,$0-64
	MOVQ	flags+0(FP), DI
	MOVQ	stackTop+8(FP), SI
	MOVQ	tidAddr+16(FP), DX	// parent_tid
	MOVQ	tidAddr+16(FP), R10	// child_tid
	MOVQ	$0, R8			// tls
	MOVQ	addr+24(FP), R12
	MOVQ	pages+32(FP), R13
	MOVQ	stride+40(FP), R14
	MOVQ	result+48(FP), R9
	MOVQ	$56, AX			// SYS_clone
	SYSCALL
	CMPQ	AX, $0
	JEQ	toucher
	MOVQ	AX, ret+56(FP)
	RET

toucher:
	MOVQ	$110, AX		// SYS_getppid
	SYSCALL
	XORQ	BX, BX
touch:
	MOVBQZX	0(R12), AX
	ADDQ	AX, BX
	ADDQ	R14, R12
	DECQ	R13
	JNE	touch
	MOVQ	BX, 0(R9)
	MOVQ	$0, DI
	MOVQ	$60, AX			// SYS_exit: this thread only
	SYSCALL
	JMP	-3(PC)
