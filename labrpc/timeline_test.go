package labrpc

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// Peer is a Raft-shaped server: it registers itself with its server and
// calls the others from its own methods, on ends named at random as the
// course's tester names them.
type Peer struct {
	me    int
	peers []*ClientEnd
}

func (p *Peer) RequestVote(args *VoteArgs, reply *VoteReply) {
	reply.Term = args.Term
	reply.VoteGranted = args.CandidateId != p.me
}

// campaign asks every other peer for its vote.
//
//go:noinline
func (p *Peer) campaign(term int) {
	for i, e := range p.peers {
		if i != p.me {
			var r VoteReply
			e.Call("Peer.RequestVote", &VoteArgs{Term: term, CandidateId: p.me, LastLogIndex: 7, LastLogTerm: 2}, &r)
		}
	}
}

// clusterTrace runs, in virtual time, three peers campaigning over an
// unreliable network and a clerk that is no server calling peer 0, and
// returns the network (cleaned up). Peer i's end to peer j is named
// "x<i><j>-<random-looking>", peers are servers 0, 1 and 2.
func clusterTrace(t *testing.T) *Network {
	var net *Network
	synctest.Test(t, func(t *testing.T) {
		net = MakeNetworkSeed(7)
		defer net.Cleanup()
		net.EnableTrace(true)
		const n = 3
		peers := make([]*Peer, n)
		for i := range peers {
			peers[i] = &Peer{me: i, peers: make([]*ClientEnd, n)}
			for j := 0; j < n; j++ {
				name := fmt.Sprintf("x%d%d-cCH2dbRHRhuRD93On1l", i, j)
				peers[i].peers[j] = net.MakeEnd(name)
				net.Connect(name, j)
				net.Enable(name, true)
			}
			srv := MakeServer()
			srv.AddService(MakeService(peers[i]))
			net.AddServer(i, srv)
		}
		clerk := net.MakeEnd("clerk-Vq81")
		net.Connect("clerk-Vq81", 0)
		net.Enable("clerk-Vq81", true)
		net.Reliable(false)
		for term := 1; term <= 4; term++ {
			for _, p := range peers {
				p.campaign(term)
			}
			var r VoteReply
			clerk.Call("Peer.RequestVote", &VoteArgs{Term: term, CandidateId: 9}, &r)
			time.Sleep(50 * time.Millisecond)
		}
		net.Enable("x01-cCH2dbRHRhuRD93On1l", false)
		peers[0].campaign(5)
	})
	return net
}

func TestTraceTellsWhichServerSendsOnAnEnd(t *testing.T) {
	net := clusterTrace(t)
	calls := 0
	for _, e := range net.Trace() {
		if e.Kind != EventEnded {
			continue
		}
		calls++
		name := fmt.Sprint(e.End)
		want := "<nil>"
		if strings.HasPrefix(name, "x") {
			want = name[1:2] // peer i's ends are "x<i><j>-..."
		}
		if got := fmt.Sprint(e.From); got != want {
			t.Errorf("call on %v: From = %s, want %s", e.End, got, want)
		}
		if e.Args == "" {
			t.Errorf("call on %v has no args summary", e.End)
		}
	}
	if calls != 4*(3*2+1)+2 {
		t.Errorf("%d calls ended, want %d", calls, 4*(3*2+1)+2)
	}
}

func TestTimelineGroupsLanesByServerWithOneEntryPerEvent(t *testing.T) {
	net := clusterTrace(t)
	var b bytes.Buffer
	if err := net.WriteTimeline(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	var lanes []string
	for _, m := range regexp.MustCompile(`<text class="lane lane-name[^"]*" x="\d+" y="\d+">([^<]*)</text>`).FindAllStringSubmatch(page, -1) {
		lanes = append(lanes, m[1])
	}
	want := []string{
		"server 0", "0 → 1", "0 → 2", "→ 0: end clerk-Vq81",
		"server 1", "1 → 0", "1 → 2",
		"server 2", "2 → 0", "2 → 1",
	}
	if strings.Join(lanes, "\n") != strings.Join(want, "\n") {
		t.Errorf("lanes:\n%s\nwant:\n%s", strings.Join(lanes, "\n"), strings.Join(want, "\n"))
	}
	titles := map[string]int{}
	for _, m := range regexp.MustCompile(`<title>([^<]*)</title>`).FindAllStringSubmatch(page, -1) {
		titles[m[1]]++
	}
	for title, n := range titles {
		if n > 1 {
			t.Errorf("%d elements share the hover text %q", n, title)
		}
	}
	for _, s := range []string{"Term=3 CandidateId=1 LastLogIndex=7 LastLogTerm=2", "[Term=3 VoteGranted=true]", "server 1 received Peer.RequestVote call"} {
		if !strings.Contains(page, s) {
			t.Errorf("timeline lacks %q", s)
		}
	}
}

func TestShiVizHostsAreTheServersThatSend(t *testing.T) {
	net := clusterTrace(t)
	var b bytes.Buffer
	if err := net.WriteShiViz(&b); err != nil {
		t.Fatal(err)
	}
	hosts := map[string]bool{}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")[2:]
	for i := 0; i < len(lines); i += 2 {
		hosts[strings.Fields(lines[i])[0]] = true
	}
	want := []string{"end_clerk-Vq81", "network", "server_0", "server_1", "server_2"}
	var got []string
	for h := range hosts {
		got = append(got, h)
	}
	sort.Strings(got)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("ShiViz hosts %v, want %v", got, want)
	}
}

// TestTimelineRendersInChromium opens a timeline in headless Chromium, as a
// student would open it in a browser: the page's script counts the lanes
// and bars the browser laid out, and a screenshot of the window is not
// blank and shows the delivered calls' colour.
func TestTimelineRendersInChromium(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("this test opens a timeline in a real browser and needs Chromium: install Debian's package (as root: apt-get install -y chromium), as .ci/run does: %v", err)
	}
	net := clusterTrace(t)
	dir := t.TempDir()
	page := filepath.Join(dir, "timeline.html")
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := net.WriteTimeline(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	calls := 0
	for _, e := range net.Trace() {
		if e.Kind == EventEnded {
			calls++
		}
	}
	browse := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + filepath.Join(dir, "profile")}
		cmd := exec.CommandContext(ctx, chromium, append(append(base, args...), "file://"+page)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
		}
		return stdout.String()
	}
	dom := browse("--dump-dom")
	want := fmt.Sprintf(`<p id="drawn">10 lanes, %d calls drawn</p>`, calls)
	if !strings.Contains(dom, want) {
		i := strings.Index(dom, `<p id="drawn">`)
		t.Errorf("the page as Chromium laid it out lacks %q; it has %.80q", want, dom[max(i, 0):])
	}
	const w, h = 1200, 700
	shot := filepath.Join(dir, "shot.png")
	browse("--screenshot="+shot, fmt.Sprintf("--window-size=%d,%d", w, h))
	sf, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	img, err := png.Decode(sf)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Errorf("screenshot is %dx%d, want the window's %dx%d", b.Dx(), b.Dy(), w, h)
	}
	var white, delivered, total int
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			r, g, bl = r>>8, g>>8, bl>>8
			total++
			switch {
			case r > 250 && g > 250 && bl > 250:
				white++
			case r == 0x2e && g == 0x8b && bl == 0x57: // the delivered colour
				delivered++
			}
		}
	}
	if white > total*97/100 {
		t.Errorf("the screenshot is blank: %d of %d pixels white", white, total)
	}
	if delivered < 100 {
		t.Errorf("the screenshot shows %d pixels of the delivered calls' colour, want bars", delivered)
	}
}
