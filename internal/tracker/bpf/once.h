// Loads and stores of memory that another CPU, or userspace, reads or
// writes at the same time: the compiler must emit each as one access, and
// must not merge, repeat or drop it. A separate header because every part
// of the kernel side shares such memory.

#ifndef STALLMON_ONCE_H
#define STALLMON_ONCE_H

#define READ_ONCE(x) (*(volatile typeof(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))

#endif
