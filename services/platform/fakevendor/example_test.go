package fakevendor_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/trialhub/trialhub/services/platform/client"
	"github.com/trialhub/trialhub/services/platform/fakevendor"
)

// A vendor that fails once and then serves: client.HTTP retries the request, which
// carries an Idempotency-Key, and the vendor delivers it once.
func Example() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	v := fakevendor.New()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() { _ = v.Serve(ctx, ln) }()
	url := "http://" + ln.Addr().String()

	_ = v.SetFault(fakevendor.Fault{Mode: fakevendor.Flapping}) // 503, then served
	sms := client.HTTP(client.Vendor("sms-vendor", url))
	req, _ := http.NewRequest(http.MethodPost, url+"/sms", strings.NewReader(`{"to": "+4512345678", "text": "Your code is 123456"}`))
	req.Header.Set("Idempotency-Key", "job-42")
	res, err := sms.Do(req)
	if err != nil {
		panic(err)
	}
	res.Body.Close()

	fmt.Println(res.StatusCode, v.Answers("job-42"), v.Deliveries("job-42"))
	fmt.Println(v.Messages(fakevendor.SMS)[0].Text)
	// Output:
	// 202 [503 202] 1
	// Your code is 123456
}
