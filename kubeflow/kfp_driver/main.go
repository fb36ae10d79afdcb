// Command kfp-driver runs Kubeflow Pipelines' own driver code
// (backend/src/v2/driver, backend/src/v2/metadata) against an ML Metadata gRPC
// server, so that a task can be handed exactly the ExecutorInput KFP builds,
// and its outputs recorded as KFP's launcher records them. Each subcommand
// prints one JSON object on stdout; KFP's own logs go to stderr.
//
//	kfp-driver root-dag  --mlmd HOST:PORT --spec SPEC.yaml --run-id ID --pipeline-root ROOT [--param name=value ...]
//	kfp-driver container --mlmd HOST:PORT --spec SPEC.yaml --task NAME --run-id ID --dag-execution-id N
//	kfp-driver publish   --mlmd HOST:PORT --spec SPEC.yaml --task NAME --run-id ID --execution-id M \
//	                     --executor-input FILE [--executor-output FILE] [--failed]
//	kfp-driver importer  --mlmd HOST:PORT --spec SPEC.yaml --task NAME --run-id ID --dag-execution-id N
//
// What runs for real and what is imitated is listed in README.md.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"

	"github.com/kubeflow/pipelines/api/v2alpha1/go/pipelinespec"
	"github.com/kubeflow/pipelines/backend/src/v2/driver"
	"github.com/kubeflow/pipelines/backend/src/v2/metadata"
	"github.com/kubeflow/pipelines/kubernetes_platform/go/kubernetesplatform"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"gopkg.in/yaml.v3"
)

const usage = `usage: kfp-driver COMMAND [flags]   (KFP ` + kfpRelease + `)
  root-dag   the root DAG driver: creates the run's contexts and DAG execution
  container  the container driver: a task's ExecutorInput and its execution
  publish    what the launcher records after the task's command exited
  importer   the importer launcher: imports an artifact by URI
Run kfp-driver COMMAND -h for its flags.`

func main() {
	// KFP's driver and launcher log through glog, to stderr (cmd/driver/main.go init).
	flag.Set("logtostderr", "true")
	flag.Set("stderrthreshold", "WARNING")
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	commands := map[string]func([]string) (any, error){
		"root-dag":  rootDAG,
		"container": container,
		"publish":   publish,
		"importer":  importer,
	}
	command, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	result, err := command(os.Args[2:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kfp-driver %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(result); err != nil {
		fmt.Fprintf(os.Stderr, "kfp-driver %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// runFlags are the flags every subcommand takes: where MLMD listens, the
// compiled spec, the run, and the namespace the run's pods would be in.
type runFlags struct {
	mlmd, spec, runID, namespace string
}

func (r *runFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.mlmd, "mlmd", "", "ML Metadata gRPC server, HOST:PORT")
	fs.StringVar(&r.spec, "spec", "", "compiled pipeline spec (YAML)")
	fs.StringVar(&r.runID, "run-id", "", "KFP run ID (the pipeline run context's name)")
	fs.StringVar(&r.namespace, "namespace", "kubeflow", "namespace of the run's pods")
}

// parse parses args and checks that the flags named in required are set.
func parse(fs *flag.FlagSet, args []string, required ...string) error {
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, name := range required {
		if !set[name] {
			return fmt.Errorf("--%s is required", name)
		}
	}
	return nil
}

// taskFlags are the flags of the subcommands on one task of the root DAG.
type taskFlags struct {
	runFlags
	task string
}

func (t *taskFlags) register(fs *flag.FlagSet) {
	t.runFlags.register(fs)
	fs.StringVar(&t.task, "task", "", "task name in the root DAG")
}

// parseTask parses args, checks that the flags named in required are set, and
// finds the task in the spec.
func (t *taskFlags) parseTask(fs *flag.FlagSet, args []string, required ...string) (*pipelinespec.PipelineSpec, *taskParts, error) {
	if err := parse(fs, args, required...); err != nil {
		return nil, nil, err
	}
	spec, platform, err := readSpec(t.spec)
	if err != nil {
		return nil, nil, err
	}
	task, err := taskOf(spec, platform, t.task)
	if err != nil {
		return nil, nil, err
	}
	return spec, task, nil
}

// driverTask is parseTask for the container and importer subcommands: the
// task must have the executor they drive (kind: "container" or "importer");
// then the MLMD client.
func (t *taskFlags) driverTask(fs *flag.FlagSet, args []string, kind string) (*pipelinespec.PipelineSpec, *taskParts, *metadata.Client, error) {
	spec, task, err := t.parseTask(fs, args, "mlmd", "spec", "task", "run-id", "dag-execution-id")
	if err != nil {
		return nil, nil, nil, err
	}
	switch {
	case kind == "container" && task.container == nil:
		return nil, nil, nil, fmt.Errorf("task %s is not a container task", t.task)
	case kind == "importer" && task.importer == nil:
		return nil, nil, nil, fmt.Errorf("task %s is not an importer task", t.task)
	}
	client, err := t.client()
	if err != nil {
		return nil, nil, nil, err
	}
	return spec, task, client, nil
}

func (r *runFlags) client() (*metadata.Client, error) {
	host, port, err := net.SplitHostPort(r.mlmd)
	if err != nil {
		return nil, fmt.Errorf("--mlmd %q: %w", r.mlmd, err)
	}
	return newMetadataClient(host, port)
}

// options are the driver Options of every driver of the run.
func (r *runFlags) options(spec *pipelinespec.PipelineSpec) driver.Options {
	return driver.Options{
		PipelineName: spec.GetPipelineInfo().GetName(),
		RunID:        r.runID,
		Namespace:    r.namespace,
	}
}

// params collects repeated --param name=value flags.
type params map[string]string

func (p params) String() string { return fmt.Sprint(map[string]string(p)) }
func (p params) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("want name=value, got %q", s)
	}
	p[name] = value
	return nil
}

// rootDAG runs driver.RootDAG with the inputs the Argo workflow gives the root
// driver (argocompiler: the root component spec and the job's runtime config).
func rootDAG(args []string) (any, error) {
	fs := flag.NewFlagSet("root-dag", flag.ContinueOnError)
	var run runFlags
	run.register(fs)
	pipelineRoot := fs.String("pipeline-root", "", "pipeline root (gs://, s3:// or minio://, as KFP requires)")
	runParams := params{}
	fs.Var(runParams, "param", "run parameter name=value (repeatable): a string for STRING parameters, JSON otherwise")
	if err := parse(fs, args, "mlmd", "spec", "run-id", "pipeline-root"); err != nil {
		return nil, err
	}
	spec, _, err := readSpec(run.spec)
	if err != nil {
		return nil, err
	}
	values, err := runtimeParameters(spec.GetRoot(), runParams)
	if err != nil {
		return nil, err
	}
	client, err := run.client()
	if err != nil {
		return nil, err
	}
	opts := run.options(spec)
	opts.Component = spec.GetRoot()
	opts.IterationIndex = -1
	opts.RuntimeConfig = &pipelinespec.PipelineJob_RuntimeConfig{
		ParameterValues:    values,
		GcsOutputDirectory: *pipelineRoot,
	}
	if err := setReleaseOptions(&opts, "ROOT_DAG", "", publishLogsDefault); err != nil {
		return nil, err
	}
	var execution *driver.Execution
	// RootDAG reads the kfp-launcher ConfigMap through a Kubernetes client.
	err = withKubernetesStandIn(func() error {
		execution, err = driver.RootDAG(context.Background(), opts, client)
		return err
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"execution_id": execution.ID}, nil
}

// runtimeParameters are the root DAG's parameter values: the spec's defaults
// (filled in by argocompiler.Compile), overridden by the run's parameters,
// typed as the KFP client sends them.
func runtimeParameters(root *pipelinespec.ComponentSpec, runParams params) (map[string]*structpb.Value, error) {
	definitions := root.GetInputDefinitions().GetParameters()
	values := map[string]*structpb.Value{}
	for name, definition := range definitions {
		if definition.GetDefaultValue() != nil {
			values[name] = definition.GetDefaultValue()
		}
	}
	for name, text := range runParams {
		definition, ok := definitions[name]
		if !ok {
			return nil, fmt.Errorf("--param %s: the pipeline has no such parameter", name)
		}
		if definition.GetParameterType() == pipelinespec.ParameterType_STRING {
			values[name] = structpb.NewStringValue(text)
			continue
		}
		value := &structpb.Value{}
		if err := protojson.Unmarshal([]byte(text), value); err != nil {
			return nil, fmt.Errorf("--param %s: %s value %q is not JSON: %w", name, definition.GetParameterType(), text, err)
		}
		values[name] = value
	}
	return values, nil
}

// container runs driver.Container with the Options the Argo workflow passes
// the container driver (argocompiler container.go: the task's component spec,
// task spec, container spec and Kubernetes executor config).
func container(args []string) (any, error) {
	fs := flag.NewFlagSet("container", flag.ContinueOnError)
	var run taskFlags
	run.register(fs)
	dagExecutionID := fs.Int64("dag-execution-id", 0, "the parent DAG's execution ID (root-dag's execution_id)")
	publishLogs := fs.Bool("publish-logs", publishLogsDefault, "the driver's --publish_logs (KFP 2.5.0 on; true as in KFP's manifests)")
	cacheDB := fs.String("cache-db", "", "JSON-lines file of the cache entries the KFP API server would hold (default: none, every lookup misses)")
	spec, task, client, err := run.driverTask(fs, args, "container")
	if err != nil {
		return nil, err
	}
	opts := run.options(spec)
	opts.Component = task.component
	opts.Task = task.spec
	opts.DAGExecutionID = *dagExecutionID
	opts.IterationIndex = -1 // root DAG tasks only: no loops
	opts.Container = task.container
	opts.KubernetesExecutorConfig = task.kubernetes
	if err := setReleaseOptions(&opts, "CONTAINER", run.task, *publishLogs); err != nil {
		return nil, err
	}
	var execution *driver.Execution
	err = withTaskServiceStandIn(*cacheDB, func(host, port string) error {
		execution, err = runContainerDriver(context.Background(), opts, client, host, port)
		return err
	})
	if err != nil {
		return nil, err
	}
	executorInput, err := protojson.Marshal(execution.ExecutorInput)
	if err != nil {
		return nil, err
	}
	commandInput, err := protojson.Marshal(withDefaultParameters(execution.ExecutorInput, task.component))
	if err != nil {
		return nil, err
	}
	result := map[string]any{
		"execution_id":            execution.ID,
		"executor_input":          json.RawMessage(executorInput),
		"launcher_executor_input": json.RawMessage(commandInput),
		"cached":                  execution.Cached != nil && *execution.Cached,
		"condition":               execution.Condition,
		"pod_spec_patch":          nil,
	}
	if execution.PodSpecPatch != "" {
		result["pod_spec_patch"] = json.RawMessage(execution.PodSpecPatch)
	}
	return result, nil
}

// withDefaultParameters is the ExecutorInput the launcher substitutes for
// {{$}}: the driver's, plus the component's default for every input parameter
// the driver left out (imitates component.addDefaultParams, launcher_v2.go).
func withDefaultParameters(input *pipelinespec.ExecutorInput, component *pipelinespec.ComponentSpec) *pipelinespec.ExecutorInput {
	filled := proto.Clone(input).(*pipelinespec.ExecutorInput)
	if filled.GetInputs() == nil {
		filled.Inputs = &pipelinespec.ExecutorInput_Inputs{}
	}
	if filled.Inputs.ParameterValues == nil {
		filled.Inputs.ParameterValues = map[string]*structpb.Value{}
	}
	for name, definition := range component.GetInputDefinitions().GetParameters() {
		if _, given := filled.Inputs.ParameterValues[name]; !given && definition.GetDefaultValue() != nil {
			filled.Inputs.ParameterValues[name] = definition.GetDefaultValue()
		}
	}
	return filled
}

// taskParts is what the Argo workflow hands a task's driver or launcher.
type taskParts struct {
	spec       *pipelinespec.PipelineTaskSpec
	component  *pipelinespec.ComponentSpec
	container  *pipelinespec.PipelineDeploymentConfig_PipelineContainerSpec
	importer   *pipelinespec.PipelineDeploymentConfig_ImporterSpec
	kubernetes *kubernetesplatform.KubernetesExecutorConfig
}

// taskOf finds a root DAG task's parts in the spec, as the compiler does
// (argocompiler dag.go task(): components by componentRef, executors by the
// component's executorLabel, the platform spec's executor config by label).
func taskOf(spec *pipelinespec.PipelineSpec, platform *pipelinespec.PlatformSpec, name string) (*taskParts, error) {
	task, ok := spec.GetRoot().GetDag().GetTasks()[name]
	if !ok {
		var names []string
		for n := range spec.GetRoot().GetDag().GetTasks() {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("no task %q in the root DAG (tasks: %s)", name, strings.Join(names, ", "))
	}
	component, ok := spec.GetComponents()[task.GetComponentRef().GetName()]
	if !ok {
		return nil, fmt.Errorf("component spec for %q not found", task.GetComponentRef().GetName())
	}
	parts := &taskParts{spec: task, component: component}
	deployment := &pipelinespec.PipelineDeploymentConfig{}
	if err := structToProto(spec.GetDeploymentSpec(), deployment); err != nil {
		return nil, fmt.Errorf("deploymentSpec: %w", err)
	}
	executor, ok := deployment.GetExecutors()[component.GetExecutorLabel()]
	if !ok {
		return nil, fmt.Errorf("executor with label %q not found", component.GetExecutorLabel())
	}
	parts.container = executor.GetContainer()
	parts.importer = executor.GetImporter()
	if config := platform.GetPlatforms()["kubernetes"].GetDeploymentSpec().GetExecutors()[component.GetExecutorLabel()]; config != nil {
		parts.kubernetes = &kubernetesplatform.KubernetesExecutorConfig{}
		if err := structToProto(config, parts.kubernetes); err != nil {
			return nil, fmt.Errorf("kubernetes executor config of %q: %w", component.GetExecutorLabel(), err)
		}
	}
	return parts, nil
}

func structToProto(s *structpb.Struct, m proto.Message) error {
	js, err := protojson.Marshal(s)
	if err != nil {
		return err
	}
	return protojson.Unmarshal(js, m)
}

// readSpec reads a compiled spec: a PipelineSpec document, optionally followed
// by a platform spec document, parsed strictly as the KFP API server does.
func readSpec(path string) (*pipelinespec.PipelineSpec, *pipelinespec.PlatformSpec, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var spec *pipelinespec.PipelineSpec
	var platform *pipelinespec.PlatformSpec
	decoder := yaml.NewDecoder(bytes.NewReader(raw))
	for {
		var document any
		err := decoder.Decode(&document)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		if document == nil {
			continue
		}
		js, err := json.Marshal(document)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		if spec == nil {
			spec = &pipelinespec.PipelineSpec{}
			if err := protojson.Unmarshal(js, spec); err != nil {
				return nil, nil, fmt.Errorf("%s: not a pipeline spec: %w", path, err)
			}
			continue
		}
		platform = &pipelinespec.PlatformSpec{}
		if err := protojson.Unmarshal(js, platform); err != nil {
			return nil, nil, fmt.Errorf("%s: second document is not a platform spec: %w", path, err)
		}
	}
	if spec == nil {
		return nil, nil, fmt.Errorf("%s: no pipeline spec", path)
	}
	return spec, platform, nil
}
