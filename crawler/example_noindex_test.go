package crawler_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/semrpc/semrpc/crawler"
)

// A page that asks not to be indexed (here by an X-Robots-Tag header;
// <meta name="robots" content="noindex"> works the same) is fetched and its
// links are followed, but the crawl lists it in Result.NoIndex, not in
// Fetched. HTTPFetcher is a PageFetcher, so the strategy learns it.
func ExampleResult_noIndex() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		switch r.URL.Path {
		case "/":
			fmt.Fprint(w, `<a href="/drafts/">drafts</a>`)
		case "/drafts/":
			w.Header().Set("X-Robots-Tag", "noindex")
			fmt.Fprint(w, `<a href="/drafts/one.html">one</a>`)
		default:
			fmt.Fprint(w, `no links`)
		}
	}))
	defer srv.Close()
	f, err := crawler.NewHTTPFetcher(nil)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	res, err := crawler.Serial(context.Background(), srv.URL+"/", f)
	if err != nil {
		panic(err)
	}
	for _, u := range res.Fetched {
		fmt.Println("indexed:    ", u[len(srv.URL):])
	}
	for _, u := range res.NoIndex {
		fmt.Println("not indexed:", u[len(srv.URL):])
	}
	// Output:
	// indexed:     /
	// indexed:     /drafts/one.html
	// not indexed: /drafts/
}
