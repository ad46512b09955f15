package rpc

import (
	"errors"
)

// DefaultMaxMessageSize bounds one gob message (a header or a body) on read.
const DefaultMaxMessageSize = 4 << 20

// ErrTooManyTypes is reported when a stream defines more gob types, or
// larger ones, than a connection will keep (internal/gobcheck's limits): a
// gob decoder keeps every type it is told of for the stream's life.
var ErrTooManyTypes = errors.New("rpc: too many gob type definitions on one connection")
