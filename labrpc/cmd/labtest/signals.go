package main

import (
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// catchSignals keeps an interrupt (Ctrl-C), a hangup or a termination
// signal from ending labtest at once, so that it can pass the signal on to
// its child, wait for it, and remove its temporary files. A Ctrl-C reaches
// the child directly too: the terminal signals the whole process group.
func catchSignals() (sigs chan os.Signal, stop func()) {
	sigs = make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	return sigs, func() { signal.Stop(sigs) }
}

// waitRelaying waits for cmd, started, passing on to it each signal that
// arrives on sigs meanwhile. It returns the signal that ended the child,
// if one did, the last signal passed on (the child may have ended for
// another reason after it), and cmd.Wait's error.
func waitRelaying(cmd *exec.Cmd, sigs chan os.Signal) (died, received os.Signal, err error) {
	done := make(chan struct{})
	relayed := make(chan os.Signal, 1)
	go func() {
		var last os.Signal
		defer func() { relayed <- last }()
		for {
			select {
			case s := <-sigs:
				last = s
				cmd.Process.Signal(s) // an error means the child has exited
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	received = <-relayed
	if received == nil {
		received, _ = interrupted(sigs)
	}
	return diedOf(cmd.ProcessState), received, err
}

// interrupted reports a signal received before there was a child to pass
// it on to.
func interrupted(sigs chan os.Signal) (os.Signal, bool) {
	select {
	case s := <-sigs:
		return s, true
	default:
		return nil, false
	}
}
