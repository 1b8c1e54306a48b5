// Command kube-testenv runs a throw-away Kubernetes control plane on 127.0.0.1:
// embedded etcd (in this process), plus kube-apiserver and
// kube-controller-manager from k8s.io/kubernetes, each re-executed from this
// same binary as its own child process so that their global state (flags,
// metrics registries, feature gates, signal handlers) never clashes.
//
// Usage:
//
//	kube-testenv [run] --data-dir DIR --kubeconfig-out FILE
//	kube-testenv apiserver <kube-apiserver flags>                   (internal)
//	kube-testenv controller-manager <kube-controller-manager flags> (internal)
//	kube-testenv scheduler <kube-scheduler flags>                   (internal)
//
// The kubeconfig is written (atomically) only after the apiserver's /readyz
// answers OK and the controller-manager has created the default
// ServiceAccount, so a caller can simply wait for the file to appear.
// SIGTERM/SIGINT stop everything and exit 0.
package main

import (
	"fmt"
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	schedulerapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() {
	sub := "run"
	args := os.Args[1:]
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "apiserver":
		// Only construct the command that runs: NewAPIServerCommand installs
		// the process-wide signal handler, which may happen once per process.
		cmd := apiserverapp.NewAPIServerCommand()
		cmd.SetArgs(args)
		os.Exit(cli.Run(cmd))
	case "controller-manager":
		cmd := kcmapp.NewControllerManagerCommand()
		cmd.SetArgs(args)
		os.Exit(cli.Run(cmd))
	case "scheduler":
		cmd := schedulerapp.NewSchedulerCommand()
		cmd.SetArgs(args)
		os.Exit(cli.Run(cmd))
	case "run":
		os.Exit(run(args))
	case "help", "-h", "--help":
		fmt.Println("usage: kube-testenv [run] --data-dir DIR --kubeconfig-out FILE [flags]; kube-testenv run --help")
	default:
		fmt.Fprintf(os.Stderr, "kube-testenv: unknown subcommand %q (want run, apiserver, controller-manager, scheduler)\n", sub)
		os.Exit(2)
	}
}
