//go:build unix

package main

import (
	"os"
	"syscall"
)

// inode returns the file's inode number, so that a file replaced by another
// of the same size and time (a rename over it) still counts as changed.
func inode(info os.FileInfo) uint64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
