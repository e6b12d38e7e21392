// Package dist tests the packages make dist builds as an operator meets
// them: the .deb installed with apt into a fresh Debian bookworm root made
// by mmdebstrap (cached per clone under bin/cache/), run there, upgraded
// over an edited table, checked by lintian and systemd-analyze; the .rpm
// listed, installed and upgraded with rpm --root and checked by rpmlint;
// the arm64 packages' contents and machine. It needs root, Debian's
// mmdebstrap, lintian, rpm, rpmlint and qemu-user-static (make test
// installs them) and the Debian mirror apt uses here.
package dist
