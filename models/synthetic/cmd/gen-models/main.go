// Command gen-models writes the synthetic detector and pose models that the
// tests and the demo run in place of the real networks.
//
// Usage:
//
//	go run ./models/synthetic/cmd/gen-models [-out DIR]
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/anonymize-dev/anonymize/models/synthetic"
)

func main() {
	out := flag.String("out", "testdata/models", "folder to write the models into")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "gen-models: unexpected arguments %q; the only option is -out DIR\n", flag.Args())
		os.Exit(2)
	}
	detector, pose, err := synthetic.WriteModels(*out)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gen-models: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(detector)
	fmt.Println(pose)
}
