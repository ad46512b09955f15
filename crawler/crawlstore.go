package crawler

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// CrawlStore keeps a coordinator's crawl in one bbolt file, so that a
// coordinator killed at any moment and started again on the same store
// resumes the crawl: the frontier, the seen set, the leases with their
// deadlines, each host's pace, the outcomes and the counters. A Coordinator
// commits what each Lease and Report changed before it answers, so no
// answer a worker received is forgotten: no page reported is lost, and no
// page reported is leased again. Calls that arrive together share one
// transaction (group commit).
//
// Commits are synced to disk (bbolt's default), so the state also survives
// the machine losing power, at the cost of one sync per transaction.
type CrawlStore struct {
	db   *bbolt.DB
	path string
}

// CrawlStoreFile is the name of the bbolt file in a crawl's data directory.
const CrawlStoreFile = "crawl.db"

var (
	bucketURLs    = []byte("urls")
	bucketHosts   = []byte("hosts")
	bucketMeta    = []byte("meta")
	bucketReports = []byte("reports")
	keyScheduler  = []byte("scheduler")
	keyCoord      = []byte("coordinator")
	keyLayout     = []byte("layout")
)

const crawlStoreLayout = "semrpc-crawl-1"

// ErrCrawlStoreLocked is returned by OpenCrawlStore when another process
// has the store open.
var ErrCrawlStoreLocked = errors.New("crawler: crawl store is in use by another process")

// OpenCrawlStore opens the crawl store in directory dir, creating dir and
// the store if they do not exist. A file that is not a crawl store is an
// error, never an empty crawl.
func OpenCrawlStore(dir string) (*CrawlStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("crawler: crawl store: %w", err)
	}
	path := filepath.Join(dir, CrawlStoreFile)
	if err := checkStoreFile(path); err != nil {
		return nil, fmt.Errorf("crawler: open crawl store %s: %w", path, err)
	}
	db, err := openBolt(path)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s", ErrCrawlStoreLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("crawler: open crawl store %s: %w", path, err)
	}
	err = guardFault(func() error { return db.Update(initStore) })
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("crawler: open crawl store %s: %w", path, err)
	}
	return &CrawlStore{db: db, path: path}, nil
}

// initStore checks that the store is a crawl store, and makes an empty file
// one.
func initStore(tx *bbolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta != nil {
		if got := string(meta.Get(keyLayout)); got != crawlStoreLayout {
			return fmt.Errorf("layout %q, want %q", got, crawlStoreLayout)
		}
		return nil
	}
	empty := true
	tx.ForEach(func([]byte, *bbolt.Bucket) error { empty = false; return nil })
	if !empty {
		return errors.New("not a crawl store (it has other buckets)")
	}
	for _, name := range [][]byte{bucketURLs, bucketHosts, bucketMeta, bucketReports} {
		if _, err := tx.CreateBucket(name); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketMeta).Put(keyLayout, []byte(crawlStoreLayout))
}

// openBolt opens the bbolt file at path; a fault while bbolt reads the
// mapped file is an error, not a crash.
func openBolt(path string) (db *bbolt.DB, err error) {
	err = guardFault(func() error {
		var err error
		db, err = bbolt.Open(path, 0o644, &bbolt.Options{Timeout: time.Second})
		return err
	})
	return db, err
}

// guardFault runs f, turning a panic or a memory fault inside it (bbolt
// reads its file through a memory map, and trusts what it reads) into an
// error.
func guardFault(f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrCrawlStoreCorrupt, r)
		}
	}()
	return f()
}

// ErrCrawlStoreCorrupt is returned by OpenCrawlStore, and by a Coordinator
// reading a store, when the store's file is damaged (truncated, say).
var ErrCrawlStoreCorrupt = errors.New("crawler: crawl store is damaged")

// checkStoreFile checks, before bbolt maps the file at path, that each of
// its meta pages that is valid points within the file: bbolt would read a
// truncated file past its end and crash. A missing or empty file is fine
// (bbolt makes it); other damage is left to bbolt, which reports it.
func checkStoreFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	// A meta page: a 16-byte page header, then magic, version, page size,
	// flags (4 bytes each), root bucket (root page, sequence), freelist
	// page, high-water page, txid, checksum (8 bytes each), in the
	// machine's byte order (bbolt writes its structs as they are in memory).
	const metaOff, metaLen, magic, version = 16, 64, 0xED0CDAED, 2
	readMeta := func(off int64) (pageSize uint32, highWater, root, freelist uint64, ok bool) {
		var b [metaOff + metaLen]byte
		if _, err := f.ReadAt(b[:], off); err != nil {
			return 0, 0, 0, 0, false
		}
		m := b[metaOff:]
		ne := binary.NativeEndian
		if ne.Uint32(m[0:]) != magic || ne.Uint32(m[4:]) != version {
			return 0, 0, 0, 0, false
		}
		h := fnv.New64a()
		h.Write(m[:56])
		if h.Sum64() != ne.Uint64(m[56:]) {
			return 0, 0, 0, 0, false
		}
		return ne.Uint32(m[8:]), ne.Uint64(m[40:]), ne.Uint64(m[16:]), ne.Uint64(m[32:]), true
	}
	offsets := []int64{0}
	if ps, _, _, _, ok := readMeta(0); ok {
		offsets = append(offsets, int64(ps))
	} else {
		for ps := int64(1024); ps <= 64<<10; ps *= 2 {
			offsets = append(offsets, ps)
		}
	}
	for _, off := range offsets {
		ps, highWater, root, freelist, ok := readMeta(off)
		if !ok || ps == 0 {
			continue
		}
		const noFreelist = ^uint64(0)
		if highWater > uint64(size)/uint64(ps) || root >= highWater || (freelist >= highWater && freelist != noFreelist) {
			return fmt.Errorf("%w: the file has %d bytes, but its meta page at %d says %d pages of %d bytes (truncated?)",
				ErrCrawlStoreCorrupt, size, off, highWater, ps)
		}
	}
	return nil
}

// HasCrawl reports whether the store holds a crawl, which a Coordinator
// made on it resumes.
func (s *CrawlStore) HasCrawl() (bool, error) {
	var ok bool
	err := s.db.View(func(tx *bbolt.Tx) error {
		ok = tx.Bucket(bucketMeta).Get(keyCoord) != nil
		return nil
	})
	return ok, err
}

// Path returns the store's file.
func (s *CrawlStore) Path() string { return s.path }

// Close closes the store.
func (s *CrawlStore) Close() error { return s.db.Close() }

// coordRecord is the coordinator's own durable state.
type coordRecord struct {
	StartURLs []string      `json:"start_urls"`
	Hosts     []string      `json:"hosts,omitempty"`
	Counters  coordCounters `json:"counters"`
	Elapsed   time.Duration `json:"elapsed"`  // crawl time up to the last write
	Restarts  int           `json:"restarts"` // starts on this store after the first
	// Processes are the worker processes that took part, sorted by name,
	// at most MaxRecordedProcesses; MoreProcesses counts the others.
	Processes     []processRecord `json:"processes,omitempty"`
	MoreProcesses int             `json:"more_processes,omitempty"`
	// Skipped counts the links not followed, by reason.
	Skipped skipTally `json:"skipped,omitempty"`
	// Reported is true once a report of the finished crawl was made
	// (Coordinator.MarkReported): a coordinator opening it again is not
	// a restart.
	Reported bool `json:"reported,omitempty"`
}

// savedCrawl is everything a store holds.
type savedCrawl struct {
	coord   coordRecord
	urls    []urlRecord
	hosts   []hostRecord
	sched   metaRecord
	reports map[reportKey]int
}

// load reads the crawl; ok is false if the store holds none yet.
func (s *CrawlStore) load() (c savedCrawl, ok bool, err error) {
	c.reports = make(map[reportKey]int)
	err = guardFault(func() error {
		return s.db.View(func(tx *bbolt.Tx) error {
			meta := tx.Bucket(bucketMeta)
			raw := meta.Get(keyCoord)
			if raw == nil {
				return nil
			}
			ok = true
			if err := json.Unmarshal(raw, &c.coord); err != nil {
				return fmt.Errorf("coordinator record: %w", err)
			}
			if err := json.Unmarshal(meta.Get(keyScheduler), &c.sched); err != nil {
				return fmt.Errorf("scheduler record: %w", err)
			}
			err := tx.Bucket(bucketURLs).ForEach(func(k, v []byte) error {
				var r urlRecord
				if err := json.Unmarshal(v, &r); err != nil {
					return fmt.Errorf("URL record %q: %w", k, err)
				}
				c.urls = append(c.urls, r)
				return nil
			})
			if err != nil {
				return err
			}
			err = tx.Bucket(bucketHosts).ForEach(func(k, v []byte) error {
				var r hostRecord
				if err := json.Unmarshal(v, &r); err != nil {
					return fmt.Errorf("host record %q: %w", k, err)
				}
				c.hosts = append(c.hosts, r)
				return nil
			})
			if err != nil {
				return err
			}
			return tx.Bucket(bucketReports).ForEach(func(k, v []byte) error {
				if len(k) != 16 || len(v) != 8 {
					return fmt.Errorf("report record %x: bad size", k)
				}
				key := reportKey{task: binary.BigEndian.Uint64(k), attempt: int(binary.BigEndian.Uint64(k[8:]))}
				c.reports[key] = int(binary.BigEndian.Uint64(v))
				return nil
			})
		})
	})
	if err != nil {
		return savedCrawl{}, false, fmt.Errorf("crawler: read crawl store %s: %w", s.path, err)
	}
	return c, ok, nil
}

// save writes batch, in order, in one transaction: each write's changes,
// the coordinator's record, and its report's execution count.
func (s *CrawlStore) save(batch []pendingWrite) error {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		put := func(b *bbolt.Bucket, key []byte, v any) error {
			raw, err := json.Marshal(v)
			if err != nil {
				return err
			}
			return b.Put(key, raw)
		}
		urls, hosts, meta := tx.Bucket(bucketURLs), tx.Bucket(bucketHosts), tx.Bucket(bucketMeta)
		for _, w := range batch {
			for _, r := range w.changes.urls {
				if err := put(urls, []byte(r.URL), r); err != nil {
					return err
				}
			}
			for _, r := range w.changes.hosts {
				// "" groups the URLs that name no host: bbolt needs a key.
				if err := put(hosts, []byte("host "+r.Host), r); err != nil {
					return err
				}
			}
			if w.changes.meta != nil {
				if err := put(meta, keyScheduler, w.changes.meta); err != nil {
					return err
				}
			}
			if w.report != nil {
				var k [16]byte
				var v [8]byte
				binary.BigEndian.PutUint64(k[:], w.report.task)
				binary.BigEndian.PutUint64(k[8:], uint64(w.report.attempt))
				binary.BigEndian.PutUint64(v[:], uint64(w.executions))
				if err := tx.Bucket(bucketReports).Put(k[:], v[:]); err != nil {
					return err
				}
			}
		}
		if len(batch) > 0 {
			return put(meta, keyCoord, batch[len(batch)-1].coord)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("crawler: write crawl store %s: %w", s.path, err)
	}
	return nil
}
