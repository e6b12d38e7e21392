package tracker

import (
	"github.com/cilium/ebpf/btf"
)

// hasUserWorker tells whether task flag 0x4000 is PF_USER_WORKER (6.4+;
// before, PF_USED_ASYNC, which says nothing about who made the thread).
// A #define is not in BTF, but the same change gave struct
// kernel_clone_args its user_worker bit, which is, also where a
// distribution kernel (RHEL 9's 5.14) carries the change backported: read
// by release, a backport would leave vhost and other user workers judged
// by their creator's saved registers, a false stall that kills.
func hasUserWorker() bool {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		// No BTF: attach refused the kernel already.
		return false
	}
	var args *btf.Struct
	if err := spec.TypeByName("kernel_clone_args", &args); err != nil {
		return false
	}
	for _, m := range args.Members {
		if m.Name == "user_worker" {
			return true
		}
	}
	return false
}
