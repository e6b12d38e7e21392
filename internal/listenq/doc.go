// Package listenq reads, from the kernel, the listening sockets of the
// watched processes (TCP and unix stream): how many connections wait in
// each accept queue, its limit, and a mark that moves whenever the service
// accepts. The agent's work_waiting rule judges them: connections waiting
// while the mark stands still are work the service does not take.
//
// An iter/task_file program walks the processes' file tables; on Linux 6.1
// and later the kernel limits each walk to one process, before that the
// walk covers every task of the host and the program skips the others.
// Nothing reads /proc or the target's files. Requires Linux 5.8 (task_file
// iterators); the kernel side is in bpf/, its generated bindings in gen/.
package listenq
