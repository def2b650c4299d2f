// Package sock holds socket-level helpers shared by the client side and the
// upstream side: the quiet check (a non-blocking MSG_PEEK on the descriptor)
// and lazily re-armed read and write deadlines.
package sock
