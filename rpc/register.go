package rpc

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrNeedsContext is wrapped by the error of Register and RegisterName on a
// server with a durable store (WithDurableStore) when a method of the
// service takes no context.Context: such a method cannot reach the store's
// transaction, so what it writes is not committed with its completion
// record, and exactly-once calls of it are not exactly once. OutsideTransaction
// declares the methods for which that is fine.
var ErrNeedsContext = errors.New("rpc: method cannot write in the durable store's transaction")

// A RegisterOption adjusts how Register and RegisterName publish a service.
type RegisterOption func(*registerOptions)

type registerOptions struct {
	outsideAll bool                // OutsideTransaction(): every method of the service
	outside    map[string]struct{} // OutsideTransaction(names...): these methods
}

// OutsideTransaction declares that methods of the service may run on a
// server with a durable store although they take no context.Context, so
// that Register accepts them: the caller states that the methods keep no
// state that must survive a crash (they compute their reply from their
// arguments, or read state that never changes), or that running them more
// than once is harmless. Such a method still runs inside a store
// transaction and its reply is still recorded, but nothing it writes is
// part of that transaction: exactly-once holds for its reply, not for its
// effects. It is an option of Register and RegisterName, not of NewServer:
//
//	srv := rpc.NewServer(rpc.WithDurableStore(st))
//	err := srv.Register(Bank{}, rpc.OutsideTransaction("Version")) // Version(args, reply) takes no context
//
// With no names, every method of the service is declared; otherwise only
// the named ones (method names, without the service), each of which must be
// a published method without a context. On a server without a durable store
// the option changes nothing.
func OutsideTransaction(methods ...string) RegisterOption {
	return func(o *registerOptions) {
		if len(methods) == 0 {
			o.outsideAll = true
			return
		}
		if o.outside == nil {
			o.outside = make(map[string]struct{})
		}
		for _, m := range methods {
			o.outside[m] = struct{}{}
		}
	}
}

// checkDurable refuses svc on a durable server if one of its methods takes
// no context and was not declared with OutsideTransaction; it also refuses
// a declaration that names no such method, which is a typo or a stale name.
func (s *Server) checkDurable(svc *service, o *registerOptions) error {
	for name := range o.outside {
		m := svc.methods[name]
		switch {
		case m == nil:
			return fmt.Errorf("rpc: OutsideTransaction(%q): %s has no published method %s", name, svc.name, name)
		case m.hasCtx:
			return fmt.Errorf("rpc: OutsideTransaction(%q): %s.%s takes a context.Context, so it can write in the store's transaction; leave it out", name, svc.name, name)
		}
	}
	if !s.durable || o.outsideAll {
		return nil
	}
	var missing []string
	for name, m := range svc.methods {
		if _, ok := o.outside[name]; !ok && !m.hasCtx {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	quoted := make([]string, len(missing))
	for i, name := range missing {
		quoted[i] = fmt.Sprintf("%q", name)
	}
	first, verb := missing[0], "takes"
	if len(missing) > 1 {
		verb = "take"
	}
	return fmt.Errorf("%w: %s.%s %s no context.Context, so on this server with a durable store "+
		"(WithDurableStore) what it writes cannot commit with its completion record and exactly-once calls "+
		"of it would not be exactly once; give it a context first, "+
		"func (t *%s) %s(ctx context.Context, args A, reply *R) error, and write through the store's "+
		"transaction (semantics.TxOf[T](ctx); boltstore.TxOf(ctx) with stores/boltstore); or, if it keeps "+
		"no state that must survive a crash, pass rpc.OutsideTransaction(%s) to Register",
		ErrNeedsContext, svc.name, strings.Join(missing, ", "+svc.name+"."), verb, svc.name, first, strings.Join(quoted, ", "))
}
