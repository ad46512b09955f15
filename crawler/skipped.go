package crawler

import "slices"

// Reasons a link is not followed (SkippedLink.Reason, Skipped.Reason).
const (
	// SkipRobots: robots.txt disallows the link's URL.
	SkipRobots = "robots.txt"
	// SkipNoFollow: the link is marked rel="nofollow", or its page says
	// nofollow (<meta name="robots">, X-Robots-Tag).
	SkipNoFollow = "nofollow"
	// SkipOtherHost: the link leads outside the hosts the crawl may enter.
	SkipOtherHost = "outside the allowed hosts"
	// SkipPageLimit: the crawl had admitted its maximum of URLs.
	SkipPageLimit = "over the page limit"
	// SkipDepth: the page was at the crawl's maximum depth.
	SkipDepth = "over the depth limit"
	// SkipUnreachable: the link's host does not exist, or could not be
	// reached for good, so nothing of it may be fetched.
	SkipUnreachable = "host unreachable"
)

// skipReasons orders the reasons in reports.
var skipReasons = []string{SkipRobots, SkipNoFollow, SkipOtherHost, SkipPageLimit, SkipDepth, SkipUnreachable}

// MaxSkippedPerPage bounds the skipped links a page lists (Page.Skipped)
// and a report carries (ReportArgs.Skipped); a page's links beyond it are
// followed or dropped as usual, but not listed.
const MaxSkippedPerPage = 1000

// MaxSkippedExamples bounds the example URLs kept for each reason
// (Skipped.Examples).
const MaxSkippedExamples = 10

// SkippedLink is a link a crawl did not follow, and why.
type SkippedLink struct {
	URL    string
	Reason string // one of the Skip… constants
}

// Skipped counts the links a crawl did not follow for one reason.
type Skipped struct {
	// Reason is one of the Skip… constants.
	Reason string `json:"reason"`
	// Links counts the links not followed for Reason, once per page they
	// were found on (a link on three pages counts three times).
	Links int `json:"links"`
	// Examples are some of them, distinct, at most MaxSkippedExamples,
	// in the order they were first met.
	Examples []string `json:"examples"`
}

// skipTally is the coordinator's count of skipped links, per reason.
type skipTally []Skipped

// add counts one skipped link.
func (t *skipTally) add(url, reason string) {
	i := slices.IndexFunc(*t, func(s Skipped) bool { return s.Reason == reason })
	if i < 0 {
		*t = append(*t, Skipped{Reason: reason})
		i = len(*t) - 1
	}
	s := &(*t)[i]
	s.Links++
	if len(s.Examples) < MaxSkippedExamples && len(url) <= MaxURLLength && !slices.Contains(s.Examples, url) {
		s.Examples = append(s.Examples, url)
	}
}

// sorted returns a deep copy of t in the order of skipReasons, unknown
// reasons last.
func (t skipTally) sorted() []Skipped {
	out := make([]Skipped, 0, len(t))
	for _, s := range t {
		s.Examples = slices.Clone(s.Examples)
		out = append(out, s)
	}
	rank := func(r string) int {
		if i := slices.Index(skipReasons, r); i >= 0 {
			return i
		}
		return len(skipReasons)
	}
	slices.SortStableFunc(out, func(a, b Skipped) int { return rank(a.Reason) - rank(b.Reason) })
	return out
}

// validSkipReason reports whether r is one of the Skip… constants.
func validSkipReason(r string) bool { return slices.Contains(skipReasons, r) }
