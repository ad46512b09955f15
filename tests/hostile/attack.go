//go:build linux

package hostile

import "time"

// attack is one hostile scenario against a fresh server.
type attack struct {
	name string
	// goal is what the server must achieve, in words.
	goal string
	// server says what server the attack needs; nil means a default
	// server over TCP.
	server func(sc scale) targetConfig
	// fullOnly attacks run only at full scale.
	fullOnly bool
	// prepare builds the attacker's bytes (and may open connections)
	// before the baseline, so that none of it counts as the server's.
	prepare func(s *scenario) error
	// launch attacks: it returns once the bytes are sent and, for an
	// attack that waits for the server's verdict, once it came.
	launch func(s *scenario) error
	// during, if set, runs while the legitimate calls of the "during"
	// window start: a one-shot attack launches itself again there.
	during func(s *scenario)
	// closeWait, if set, is how long after the attack the server has to
	// close the attacker's connections (its timeouts' goal).
	closeWait time.Duration
	// idleClose attacks wait for the server to close their connections
	// only when SEMRPC_HOSTILE_CLOSE_WAIT says how long (an idle
	// timeout is long).
	idleClose bool
	// finish, if set, runs after that wait, before the attacker's
	// connections are closed.
	finish func(s *scenario)
	// check records the goals the server missed.
	check func(s *scenario, r *Result)
}

// defaultBigSize is the size of the value under BigKey unless an attack
// says otherwise.
const defaultBigSize = 64 << 10

func (a *attack) target(sc scale) targetConfig {
	if a.server == nil {
		return targetConfig{kind: overTCP, bigSize: defaultBigSize}
	}
	cfg := a.server(sc)
	if cfg.bigSize == 0 {
		cfg.bigSize = defaultBigSize
	}
	return cfg
}
