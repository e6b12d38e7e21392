package vm

import (
	"slices"
	"testing"
)

// These run in every `go test ./...`: they pin down how the harness reads
// apt's and kbuild's output, which TestKernels only meets as root.

func TestParseDepends(t *testing.T) {
	out := []byte(`linux-headers-6.12.95+deb12-amd64
  Depends: linux-base
  Depends: linux-headers-6.12.95+deb12-common
 |Depends: linux-image-6.12.95+deb12-amd64
  Depends: linux-image-6.12.95+deb12-amd64-unsigned
  Depends: linux-kbuild-6.12.95+deb12
  Depends: <gcc-12>
  Suggests: linux-doc-6.12
`)
	want := []string{
		"linux-base", "linux-headers-6.12.95+deb12-common", "linux-image-6.12.95+deb12-amd64",
		"linux-image-6.12.95+deb12-amd64-unsigned", "linux-kbuild-6.12.95+deb12",
	}
	if got := parseDepends(out); !slices.Equal(got, want) {
		t.Fatalf("parseDepends = %q, want %q", got, want)
	}
}

func TestParsePrintURIs(t *testing.T) {
	out := []byte("'http://deb.debian.org/debian/pool/main/b/busybox/busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb' busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb 1012480 SHA256:00\n")
	got, err := parsePrintURIs(out)
	if err != nil || got != "busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb" {
		t.Fatalf("parsePrintURIs = %q, %v", got, err)
	}
	if _, err := parsePrintURIs([]byte("E: nothing\n")); err == nil {
		t.Fatal("parsePrintURIs accepted output without a .deb")
	}
}

func TestParseCompiler(t *testing.T) {
	cc, err := parseCompiler([]byte("CONFIG_CC_IS_GCC=y\nCONFIG_CC_VERSION_TEXT=\"gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0\"\n"))
	if err != nil || cc != "gcc-12" {
		t.Fatalf("parseCompiler = %q, %v", cc, err)
	}
	if _, err := parseCompiler([]byte("CONFIG_CC_IS_GCC=y\n")); err == nil {
		t.Fatal("parseCompiler found a compiler in a config without one")
	}
}

func TestAbsIncludeRewrite(t *testing.T) {
	for _, in := range []string{
		"include /usr/src/linux-headers-6.1.0-56-common/Makefile\n",
		"include /old/cache/kernels/6.1.0-56-amd64/usr/src/linux-headers-6.1.0-56-common/Makefile\n",
	} {
		got := absIncludeRE.ReplaceAllString(in, "${1}/cache/k/usr/src/")
		if want := "include /cache/k/usr/src/linux-headers-6.1.0-56-common/Makefile\n"; got != want {
			t.Errorf("rewrite of %q = %q, want %q", in, got, want)
		}
	}
}
