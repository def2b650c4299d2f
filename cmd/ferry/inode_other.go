//go:build !unix

package main

import "os"

// inode returns 0 where the platform has no inode numbers; size and
// modification time still detect changes.
func inode(os.FileInfo) uint64 { return 0 }
