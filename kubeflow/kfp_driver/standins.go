package main

// Stand-ins for the two cluster services KFP's driver calls besides MLMD, each
// on loopback for the length of one call, so that the driver's own code runs
// unchanged: the Kubernetes API (one ConfigMap lookup) and the KFP API
// server's task table (the cache).

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/golang/glog"
	api "github.com/kubeflow/pipelines/backend/api/v1beta1/go_client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// withKubernetesStandIn runs fn with a Kubernetes API on loopback that has no
// kfp-launcher ConfigMap, the one object the root DAG driver reads
// (config.FromConfigMap, which then uses KFP's defaults). The driver finds it
// through a kubeconfig (common/util GetKubernetesConfig falls back to one when
// not in a pod). Any other request fails loudly.
func withKubernetesStandIn(fn func() error) error {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	server := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		// GET /api/v1/namespaces/NS/configmaps/kfp-launcher
		if r.Method == http.MethodGet && len(parts) == 6 && parts[0] == "api" && parts[1] == "v1" &&
			parts[2] == "namespaces" && parts[4] == "configmaps" {
			glog.Infof("Kubernetes stand-in: %s %s: not found", r.Method, r.URL.Path)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",`+
				`"message":"configmaps %q not found","reason":"NotFound","details":{"name":%q,"kind":"configmaps"},"code":404}`,
				parts[5], parts[5])
			return
		}
		http.Error(w, "kfp-driver's Kubernetes stand-in serves only ConfigMap lookups", http.StatusNotImplemented)
	})}
	go server.Serve(listener)
	defer server.Close()

	dir, err := os.MkdirTemp("", "kfp-driver-kube")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	kubeconfig := filepath.Join(dir, "config")
	text := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: standin, cluster: {server: "http://%s"}}]
users: [{name: standin, user: {}}]
contexts: [{name: standin, context: {cluster: standin, user: standin}}]
current-context: standin
`, listener.Addr())
	if err := os.WriteFile(kubeconfig, []byte(text), 0o600); err != nil {
		return err
	}
	// Not in a pod: the in-cluster config must not be taken instead.
	os.Unsetenv("KUBERNETES_SERVICE_HOST")
	os.Setenv("KUBECONFIG", kubeconfig)
	return fn()
}

// taskStore stands in for the KFP API server's task table, which holds one
// entry per task that ran with caching on: its fingerprint and MLMD execution.
// Kept in a JSON file (one api.Task per line) when a path is given, else empty.
type taskStore struct {
	api.UnimplementedTaskServiceServer
	path  string
	mu    sync.Mutex
	tasks []*api.Task
}

func openTaskStore(path string) (*taskStore, error) {
	store := &taskStore{path: path}
	if path == "" {
		return store, nil
	}
	raw, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return store, nil
	}
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if line == "" {
			continue
		}
		task := &api.Task{}
		if err := protojson.Unmarshal([]byte(line), task); err != nil {
			return nil, fmt.Errorf("cache db %s: %w", path, err)
		}
		store.tasks = append(store.tasks, task)
	}
	return store, nil
}

// CreateTaskV1 records a cache entry (called by the launcher after a task ran).
func (s *taskStore) CreateTaskV1(_ context.Context, request *api.CreateTaskRequest) (*api.Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	task := request.GetTask()
	task.Id = fmt.Sprint(len(s.tasks) + 1)
	s.tasks = append(s.tasks, task)
	if s.path == "" {
		return task, nil
	}
	line, err := protojson.Marshal(task)
	if err != nil {
		return nil, err
	}
	file, err := os.OpenFile(s.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	defer file.Close()
	_, err = fmt.Fprintf(file, "%s\n", line)
	return task, err
}

// ListTasksV1 answers the one query KFP's cache client makes
// (cacheutils.GetExecutionCache): equality on fingerprint, pipelineName and
// namespace, newest first.
func (s *taskStore) ListTasksV1(_ context.Context, request *api.ListTasksRequest) (*api.ListTasksResponse, error) {
	filter := &api.Filter{}
	if err := protojson.Unmarshal([]byte(request.GetFilter()), filter); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "filter: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var matched []*api.Task
	for _, task := range s.tasks {
		fields := map[string]string{
			"fingerprint": task.GetFingerprint(), "pipelineName": task.GetPipelineName(), "namespace": task.GetNamespace(),
		}
		match := true
		for _, predicate := range filter.GetPredicates() {
			field, known := fields[predicate.GetKey()]
			if !known || predicate.GetOp() != api.Predicate_EQUALS {
				return nil, status.Errorf(codes.Unimplemented, "the task store stand-in does not filter on %v", predicate)
			}
			match = match && field == predicate.GetStringValue()
		}
		if match {
			matched = append(matched, task)
		}
	}
	if request.GetSortBy() != "created_at desc" {
		return nil, status.Errorf(codes.Unimplemented, "the task store stand-in does not sort by %q", request.GetSortBy())
	}
	sort.SliceStable(matched, func(i, j int) bool {
		return matched[i].GetCreatedAt().AsTime().After(matched[j].GetCreatedAt().AsTime())
	})
	if size := int(request.GetPageSize()); size > 0 && len(matched) > size {
		matched = matched[:size]
	}
	return &api.ListTasksResponse{Tasks: matched, TotalSize: int32(len(matched))}, nil
}

// withTaskServiceStandIn runs fn with the task store served on loopback at
// host:port, for KFP's cache client to find as the API server.
func withTaskServiceStandIn(cacheDB string, fn func(host, port string) error) error {
	store, err := openTaskStore(cacheDB)
	if err != nil {
		return err
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	server := grpc.NewServer()
	api.RegisterTaskServiceServer(server, store)
	go server.Serve(listener)
	defer server.Stop()
	host, port, _ := net.SplitHostPort(listener.Addr().String())
	return fn(host, port)
}
