// vcsim-lite: govmomi's vSphere simulator as a small program, built from Debian's
// golang-github-vmware-govmomi-dev (no network, no module proxy). tests/support/vcsim.py builds it
// on demand into a cache outside the repository and starts it on a free loopback port.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
	_ "github.com/vmware/govmomi/vapi/simulator" // /rest endpoints (tags, sessions)
)

func main() {
	listen := flag.String("l", "127.0.0.1:8989", "listen address")
	user := flag.String("username", "user", "login username")
	pass := flag.String("password", "pass", "login password")
	useTLS := flag.Bool("tls", true, "serve https")
	esx := flag.Bool("esx", false, "simulate standalone ESX instead of vCenter")
	dc := flag.Int("dc", 1, "datacenters")
	cluster := flag.Int("cluster", 1, "clusters per DC")
	clusterHost := flag.Int("cluster-host", 3, "hosts per cluster")
	host := flag.Int("standalone-host", 1, "standalone hosts per DC")
	vm := flag.Int("vm", 2, "VMs per resource pool")
	// the tests' fault: this VM's configuration is unavailable, as vCenter reports an orphaned or
	// inaccessible VM (config unset, connectionState inaccessible); a sync must keep the others
	inaccessible := flag.String("inaccessible-vm", "", "name of a VM whose config is unavailable")
	flag.Parse()
	var model *simulator.Model
	if *esx {
		model = simulator.ESX()
	} else {
		model = simulator.VPX()
		model.Datacenter, model.Cluster, model.Host, model.ClusterHost = *dc, *cluster, *host, *clusterHost
	}
	model.Machine = *vm
	if err := model.Create(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if *inaccessible != "" {
		found := false
		for _, e := range simulator.Map.All("VirtualMachine") {
			if v, ok := e.(*simulator.VirtualMachine); ok && v.Name == *inaccessible {
				v.Config = nil
				v.Runtime.ConnectionState = types.VirtualMachineConnectionStateInaccessible
				found = true
			}
		}
		if !found {
			fmt.Fprintf(os.Stderr, "no VM named %q\n", *inaccessible)
			os.Exit(1)
		}
	}
	model.Service.RegisterEndpoints = true
	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*user, *pass)}
	if *useTLS {
		model.Service.TLS = new(tls.Config) // self-signed certificate generated at start
	}
	s := model.Service.NewServer()
	fmt.Printf("export GOVC_URL=%s\n", s.URL)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	s.Close()
	model.Remove() // deletes the temporary directory that backs the datastores
}
