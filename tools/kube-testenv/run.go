package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

const (
	serviceCIDR = "10.0.0.0/24"
	serviceIP   = "10.0.0.1"
	admissions  = "NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultStorageClass," +
		"ResourceQuota,PodSecurity,MutatingAdmissionWebhook,ValidatingAdmissionWebhook," +
		"ValidatingAdmissionPolicy"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	err     error
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func mustURL(s string) url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return *u
}

// startChild re-executes this binary as `<self> <sub> args...` in its own
// process group, with PDEATHSIG=SIGKILL so that it dies with its parent even
// when the parent is SIGKILLed.
func startChild(self, sub string, args []string, logPath string) (*child, error) {
	return startProgram(self, sub, append([]string{sub}, args...), logPath)
}

// startProgram runs `<path> args...` as the child called name, like startChild.
func startProgram(path, name string, args []string, logPath string) (*child, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout = lf
	cmd.Stderr = lf
	cmd.Stdin = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		lf.Close()
		close(c.done)
	}()
	log.Printf("started %s (pid %d), log %s", name, cmd.Process.Pid, logPath)
	return c, nil
}

// doneOrNever is c.done, or a channel that never closes for a child not started.
func (c *child) doneOrNever() <-chan struct{} {
	if c == nil {
		return nil
	}
	return c.done
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the child's process group, then SIGKILL after grace.
func (c *child) stop(grace time.Duration) {
	if c == nil || c.exited() {
		return
	}
	pid := c.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		log.Printf("%s did not stop within %s, killing", c.name, grace)
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-c.done
	}
	// Anything else left in the group (there should be nothing).
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	log.Printf("%s stopped (%v)", c.name, c.err)
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func kubeconfig(server string, caPEM []byte, token string) []byte {
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kube-testenv
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: kube-testenv-admin
  user:
    token: %s
contexts:
- name: kube-testenv
  context:
    cluster: kube-testenv
    user: kube-testenv-admin
    namespace: default
current-context: kube-testenv
`, server, base64.StdEncoding.EncodeToString(caPEM), token))
}

type apiClient struct {
	base  string
	token string
	http  *http.Client
}

func (a *apiClient) get(path string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, a.base+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(bytes.TrimSpace(body)), nil
}

var errStopped = errors.New("stopped by signal")

// waitFor polls cond every 250ms until it returns true, the deadline passes,
// a signal arrives, or one of the children exits.
func waitFor(ctx context.Context, what string, children []*child, cond func() (bool, string)) error {
	last := ""
	for {
		for _, c := range children {
			if c != nil && c.exited() {
				return fmt.Errorf("%s exited while waiting for %s: %v", c.name, what, c.err)
			}
		}
		ok, detail := cond()
		if ok {
			return nil
		}
		last = detail
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), errStopped) {
				return errStopped
			}
			return fmt.Errorf("timed out waiting for %s (last: %s)", what, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func run(argv []string) int {
	log.SetPrefix("kube-testenv: ")
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	fs := flag.NewFlagSet("kube-testenv run", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "directory for etcd data, PKI, tokens and logs (default: a temp dir removed at exit)")
	kubeconfigOut := fs.String("kubeconfig-out", "", "write an admin kubeconfig here once the control plane is ready (removed at exit)")
	apiPort := fs.Int("apiserver-port", 0, "kube-apiserver secure port on 127.0.0.1 (0: pick a free port)")
	etcdPort := fs.Int("etcd-port", 0, "etcd client port on 127.0.0.1 (0: pick a free port)")
	timeout := fs.Duration("startup-timeout", 170*time.Second, "give up if the control plane is not ready by then")
	verbosity := fs.Int("v", 1, "klog verbosity of the kube components")
	withScheduler := fs.Bool("scheduler", false, "also run kube-scheduler, so pods are bound to nodes")
	kwokBin := fs.String("kwok", "", "also run this kwok binary: it fakes the nodes annotated kwok.x-k8s.io/node=fake and drives their pods' status")
	kwokConfig := fs.String("kwok-config", "", "kwok's --config (its Stages); required with --kwok")
	var apiExtra, kcmExtra multiFlag
	fs.Var(&apiExtra, "apiserver-arg", "extra kube-apiserver flag, e.g. --apiserver-arg=--feature-gates=X=true (repeatable)")
	fs.Var(&kcmExtra, "controller-manager-arg", "extra kube-controller-manager flag (repeatable)")
	if err := fs.Parse(argv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		log.Printf("unexpected arguments: %q", fs.Args())
		return 2
	}

	self, err := os.Executable()
	if err != nil {
		log.Printf("cannot find own executable: %v", err)
		return 1
	}

	removeDataDir := false
	if *dataDir == "" {
		d, err := os.MkdirTemp("", "kube-testenv-")
		if err != nil {
			log.Print(err)
			return 1
		}
		*dataDir, removeDataDir = d, true
	}
	if *dataDir, err = filepath.Abs(*dataDir); err != nil {
		log.Print(err)
		return 1
	}
	logDir := filepath.Join(*dataDir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		log.Print(err)
		return 1
	}

	// Signals: the first SIGTERM/SIGINT starts a clean shutdown.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	stopCtx, stop := context.WithCancelCause(context.Background())
	go func() {
		s := <-sigs
		log.Printf("received %v, shutting down", s)
		stop(errStopped)
	}()

	if (*kwokBin == "") != (*kwokConfig == "") {
		log.Printf("--kwok and --kwok-config go together")
		return 2
	}

	var apiserver, kcm, scheduler, kwok *child
	var etcd *embed.Etcd
	wroteKubeconfig := false
	shutdown := func() {
		kwok.stop(15 * time.Second)
		scheduler.stop(15 * time.Second)
		kcm.stop(15 * time.Second)
		apiserver.stop(30 * time.Second)
		if etcd != nil {
			etcd.Close()
			log.Printf("etcd stopped")
		}
		if wroteKubeconfig {
			_ = os.Remove(*kubeconfigOut)
		}
		if removeDataDir {
			_ = os.RemoveAll(*dataDir)
		}
	}
	fail := func(format string, a ...any) int {
		log.Printf("ERROR: "+format, a...)
		for _, c := range []*child{apiserver, kcm, scheduler, kwok} {
			if c != nil {
				log.Printf("---- last lines of %s ----\n%s\n---- end of %s ----", c.logPath, tail(c.logPath, 40), c.name)
			}
		}
		shutdown()
		return 1
	}

	p, err := generatePKI(filepath.Join(*dataDir, "pki"))
	if err != nil {
		return fail("generating PKI: %v", err)
	}

	// --- etcd, embedded in this process ---
	if *etcdPort == 0 {
		if *etcdPort, err = freePort(); err != nil {
			return fail("%v", err)
		}
	}
	peerPort, err := freePort()
	if err != nil {
		return fail("%v", err)
	}
	ecfg := embed.NewConfig()
	ecfg.Name = "kube-testenv"
	ecfg.Dir = filepath.Join(*dataDir, "etcd")
	clientURL := mustURL(fmt.Sprintf("http://127.0.0.1:%d", *etcdPort))
	peerURL := mustURL(fmt.Sprintf("http://127.0.0.1:%d", peerPort))
	ecfg.ListenClientUrls = []url.URL{clientURL}
	ecfg.AdvertiseClientUrls = []url.URL{clientURL}
	ecfg.ListenPeerUrls = []url.URL{peerURL}
	ecfg.AdvertisePeerUrls = []url.URL{peerURL}
	ecfg.InitialCluster = ecfg.InitialClusterFromName(ecfg.Name)
	ecfg.UnsafeNoFsync = true // throw-away test data
	ecfg.LogLevel = "warn"
	ecfg.LogOutputs = []string{filepath.Join(logDir, "etcd.log")}
	etcd, err = embed.StartEtcd(ecfg)
	if err != nil {
		etcd = nil
		return fail("starting etcd: %v", err)
	}
	select {
	case <-etcd.Server.ReadyNotify():
		log.Printf("etcd ready on %s", clientURL.String())
	case err := <-etcd.Err():
		return fail("etcd: %v", err)
	case <-time.After(60 * time.Second):
		return fail("etcd not ready after 60s")
	case <-stopCtx.Done():
		shutdown()
		return 0
	}

	// --- kube-apiserver ---
	if *apiPort == 0 {
		if *apiPort, err = freePort(); err != nil {
			return fail("%v", err)
		}
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", *apiPort)
	apiArgs := []string{
		"--etcd-servers=" + clientURL.String(),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", *apiPort),
		"--cert-dir=" + filepath.Join(*dataDir, "apiserver-certs"),
		"--tls-cert-file=" + p.servingCrt,
		"--tls-private-key-file=" + p.servingKey,
		"--client-ca-file=" + p.caCert,
		"--token-auth-file=" + p.tokenFile,
		"--authorization-mode=RBAC",
		"--anonymous-auth=false",
		"--service-cluster-ip-range=" + serviceCIDR,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p.saPub,
		"--service-account-signing-key-file=" + p.saKey,
		"--enable-admission-plugins=" + admissions,
		// Privileged containers are allowed by the cluster, so that it is
		// PodSecurity admission (namespace labels) that decides.
		"--allow-privileged=true",
		"--profiling=false",
		// The lease/master-count reconcilers refuse a loopback advertise
		// address; nothing here needs endpoints for the kubernetes Service.
		"--endpoint-reconciler-type=none",
		fmt.Sprintf("--v=%d", *verbosity),
	}
	apiArgs = append(apiArgs, apiExtra...)
	apiserver, err = startChild(self, "apiserver", apiArgs, filepath.Join(logDir, "apiserver.log"))
	if err != nil {
		return fail("starting apiserver: %v", err)
	}

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.caPEM)
	ac := &apiClient{base: server, token: p.adminToken, http: &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}}
	waitCtx, cancelWait := context.WithTimeout(stopCtx, *timeout)
	defer cancelWait()
	err = waitFor(waitCtx, "apiserver /readyz", []*child{apiserver}, func() (bool, string) {
		code, body, err := ac.get("/readyz")
		if err != nil {
			return false, err.Error()
		}
		return code == http.StatusOK, fmt.Sprintf("HTTP %d %s", code, body)
	})
	if errors.Is(err, errStopped) {
		shutdown()
		return 0
	} else if err != nil {
		return fail("%v", err)
	}
	log.Printf("apiserver ready on %s", server)

	// --- kube-controller-manager ---
	kcmKubeconfig := filepath.Join(*dataDir, "controller-manager.kubeconfig")
	if err := writeFile(kcmKubeconfig, kubeconfig(server, p.caPEM, p.adminToken), 0o600); err != nil {
		return fail("%v", err)
	}
	kcmArgs := []string{
		"--kubeconfig=" + kcmKubeconfig,
		"--service-account-private-key-file=" + p.saKey,
		"--root-ca-file=" + p.caCert,
		"--use-service-account-credentials=false",
		"--leader-elect=false",
		"--secure-port=0", // no metrics/health server: nothing else to bind
		"--service-cluster-ip-range=" + serviceCIDR,
		"--controllers=*",
		"--concurrent-deployment-syncs=5",
		"--concurrent-replicaset-syncs=5",
		fmt.Sprintf("--v=%d", *verbosity),
	}
	kcmArgs = append(kcmArgs, kcmExtra...)
	kcm, err = startChild(self, "controller-manager", kcmArgs, filepath.Join(logDir, "controller-manager.log"))
	if err != nil {
		return fail("starting controller-manager: %v", err)
	}
	// The serviceaccount controller creating default/default proves the
	// controller-manager is up and its informers are synced.
	err = waitFor(waitCtx, "ServiceAccount default/default (controller-manager)", []*child{apiserver, kcm}, func() (bool, string) {
		code, body, err := ac.get("/api/v1/namespaces/default/serviceaccounts/default")
		if err != nil {
			return false, err.Error()
		}
		return code == http.StatusOK, fmt.Sprintf("HTTP %d %.200s", code, body)
	})
	if errors.Is(err, errStopped) {
		shutdown()
		return 0
	} else if err != nil {
		return fail("%v", err)
	}
	log.Printf("controller-manager ready")

	// --- optional: kube-scheduler and kwok, so that pods are bound and report status ---
	if *withScheduler {
		scheduler, err = startChild(self, "scheduler", []string{
			"--kubeconfig=" + kcmKubeconfig,
			"--leader-elect=false",
			"--secure-port=0",
			fmt.Sprintf("--v=%d", *verbosity),
		}, filepath.Join(logDir, "scheduler.log"))
		if err != nil {
			return fail("starting scheduler: %v", err)
		}
	}
	if *kwokBin != "" {
		kwok, err = startProgram(*kwokBin, "kwok", []string{
			"--kubeconfig=" + kcmKubeconfig,
			"--config=" + *kwokConfig,
			"--manage-all-nodes=false",
			"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
			"--node-lease-duration-seconds=40",
			"--server-address=127.0.0.1:0",
		}, filepath.Join(logDir, "kwok.log"))
		if err != nil {
			return fail("starting kwok: %v", err)
		}
	}

	if *kubeconfigOut != "" {
		if err := writeFile(*kubeconfigOut, kubeconfig(server, p.caPEM, p.adminToken), 0o600); err != nil {
			return fail("writing kubeconfig: %v", err)
		}
		wroteKubeconfig = true
		log.Printf("kubeconfig written to %s", *kubeconfigOut)
	}
	log.Printf("ready: server %s, data dir %s", server, *dataDir)

	select {
	case <-stopCtx.Done():
		shutdown()
		log.Printf("stopped cleanly")
		return 0
	case <-apiserver.done:
		return fail("apiserver exited unexpectedly: %v", apiserver.err)
	case <-kcm.done:
		return fail("controller-manager exited unexpectedly: %v", kcm.err)
	case <-scheduler.doneOrNever():
		return fail("scheduler exited unexpectedly: %v", scheduler.err)
	case <-kwok.doneOrNever():
		return fail("kwok exited unexpectedly: %v", kwok.err)
	case err := <-etcd.Err():
		return fail("etcd failed: %v", err)
	}
}
