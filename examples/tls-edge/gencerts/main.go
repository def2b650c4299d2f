// Command gencerts writes the certificates examples/tls-edge/edge.hcl names
// (make tls-demo-certs: bin/tls-demo/): a demo CA, shop.crt for
// shop.example, www.shop.example, localhost and 127.0.0.1, apps.crt for
// *.apps.example and client.crt for the mTLS listener, ECDSA P-256, valid
// 90 days. Run it again to renew them: a running ferry reloads them.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/ferry-proxy/ferry/internal/democerts"
)

func main() {
	dir := flag.String("dir", "bin/tls-demo", "directory to write the certificates to")
	flag.Parse()
	if err := democerts.Write(*dir, democerts.Edge); err != nil {
		fmt.Fprintln(os.Stderr, "gencerts:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote ca.pem, shop.crt/.key, apps.crt/.key and client.crt/.key to %s\n", *dir)
}
