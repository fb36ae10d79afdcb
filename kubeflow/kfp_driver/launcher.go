package main

// What KFP's launcher does around the user's command, which cannot itself run
// here: component.NewLauncherV2 and NewImporterLauncher need an in-cluster
// Kubernetes config (rest.InClusterConfig). Their control flow is followed step
// by step below (backend/src/v2/component/launcher_v2.go and
// importer_launcher.go), calling the real metadata client and cache client for
// every read and write.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/golang/glog"
	"github.com/kubeflow/pipelines/api/v2alpha1/go/pipelinespec"
	api "github.com/kubeflow/pipelines/backend/api/v1beta1/go_client"
	"github.com/kubeflow/pipelines/backend/src/v2/metadata"
	"github.com/kubeflow/pipelines/backend/src/v2/objectstore"
	pb "github.com/kubeflow/pipelines/third_party/ml-metadata/go/ml_metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The launcher's pod, as it records it on the execution (PrePublishExecution).
const podUID = "local"

func podName(task string) string { return "local-" + task }

// publish records a container task's outputs after its command exited, as
// LauncherV2.Execute does once executeV2 returns: output parameters and
// artifacts from the executor output file merged into the ExecutorInput's
// outputs, each artifact recorded (RecordArtifact), a cache entry created, the
// execution published COMPLETE (FAILED if the command or any of this failed),
// the parent DAG's state updated. Files are not uploaded: the task wrote them
// at their URIs.
func publish(args []string) (any, error) {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	var run taskFlags
	run.register(fs)
	executionID := fs.Int64("execution-id", 0, "the task's execution ID (container's execution_id)")
	executorInputPath := fs.String("executor-input", "", "the ExecutorInput the driver built (container's executor_input), as JSON")
	executorOutputPath := fs.String("executor-output", "", "what the task wrote to its ExecutorInput's outputFile (missing: no outputs reported)")
	failed := fs.Bool("failed", false, "the task's command failed: publish the execution FAILED, without outputs")
	cacheDB := fs.String("cache-db", "", "JSON-lines file of cache entries, as for container")
	spec, task, err := run.parseTask(fs, args, "mlmd", "spec", "task", "run-id", "execution-id", "executor-input")
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(*executorInputPath)
	if err != nil {
		return nil, err
	}
	executorInput := &pipelinespec.ExecutorInput{}
	if err := protojson.Unmarshal(raw, executorInput); err != nil {
		return nil, fmt.Errorf("failed to unmarshal executor input: %w", err)
	}
	client, err := run.client()
	if err != nil {
		return nil, err
	}
	ctx := context.Background()

	// prePublish: the execution, with the pod that runs it.
	startedAt := time.Now()
	execution, err := client.GetExecution(ctx, *executionID)
	if err != nil {
		return nil, err
	}
	execution, err = client.PrePublishExecution(ctx, execution, &metadata.ExecutionConfig{
		PodName: podName(run.task), PodUID: podUID, Namespace: run.namespace,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to pre-publish Pod info to ML Metadata: %w", err)
	}
	// From here on a failure fails the task, whose execution the launcher
	// still publishes, FAILED (Execute's deferred publish).
	state := pb.Execution_FAILED
	var outputParameters map[string]*structpb.Value
	var outputArtifacts []*metadata.OutputArtifact
	var taskErr error
	if !*failed {
		outputParameters, outputArtifacts, taskErr = recordOutputs(ctx, client, execution, executorInput, *executorOutputPath, task.component)
		if taskErr == nil {
			state = pb.Execution_COMPLETE
		}
	}
	// A task that enabled caching but missed the cache becomes a cache entry.
	if fingerprint := execution.FingerPrint(); fingerprint != "" && state == pb.Execution_COMPLETE {
		entry := &api.Task{
			PipelineName:    "pipeline/" + spec.GetPipelineInfo().GetName(),
			Namespace:       run.namespace,
			RunId:           run.runID,
			MlmdExecutionID: strconv.FormatInt(execution.GetID(), 10),
			CreatedAt:       timestamppb.New(startedAt),
			FinishedAt:      timestamppb.Now(),
			Fingerprint:     fingerprint,
		}
		taskErr = withTaskServiceStandIn(*cacheDB, func(host, port string) error {
			return createCacheEntry(ctx, host, port, entry)
		})
	}
	if err := client.PublishExecution(ctx, execution, outputParameters, outputArtifacts, state); err != nil {
		return nil, fmt.Errorf("failed to publish results to ML Metadata: %w", err)
	}
	// The parent DAG's state; the launcher only logs a failure here.
	dag, err := client.GetDAG(ctx, execution.GetExecution().GetCustomProperties()["parent_dag_id"].GetIntValue())
	if err == nil {
		pipeline, _ := client.GetPipelineFromExecution(ctx, execution.GetID())
		err = client.UpdateDAGExecutionsState(ctx, dag, pipeline)
	}
	if err != nil {
		glog.Errorf("failed to update DAG state: %v", err)
	}
	if taskErr != nil {
		return nil, fmt.Errorf("the task failed (execution %d published %s): %w", execution.GetID(), state, taskErr)
	}

	recorded, err := outputsOf(ctx, client, execution.GetID())
	if err != nil {
		return nil, err
	}
	parameters, err := protojson.Marshal(&structpb.Struct{Fields: outputParameters})
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"execution_id":      execution.GetID(),
		"state":             state.String(),
		"output_parameters": json.RawMessage(parameters),
		"output_artifacts":  recorded,
	}, nil
}

// recordOutputs is executeV2 after the command: the task's output parameters
// and artifacts, each artifact recorded with the session info of the run's
// pipeline root bucket.
func recordOutputs(ctx context.Context, client *metadata.Client, execution *metadata.Execution, input *pipelinespec.ExecutorInput, outputPath string, component *pipelinespec.ComponentSpec) (map[string]*structpb.Value, []*metadata.OutputArtifact, error) {
	sessionInfo, err := objectstore.GetSessionInfoFromString(execution.GetPipeline().GetStoreSessionInfo())
	if err != nil {
		return nil, nil, err
	}
	bucketConfig, err := objectstore.ParseBucketConfig(execution.GetPipeline().GetPipelineRoot(), sessionInfo)
	if err != nil {
		return nil, nil, err
	}
	output, err := readExecutorOutput(outputPath)
	if err != nil {
		return nil, nil, err
	}
	parameters, err := collectOutputParameters(input, output, component)
	if err != nil {
		return nil, nil, err
	}
	artifacts, err := recordOutputArtifacts(ctx, client, input, output, bucketConfig)
	if err != nil {
		return nil, nil, err
	}
	return parameters, artifacts, nil
}

// readExecutorOutput reads the executor output file; none means no outputs
// reported (getExecutorOutputFile).
func readExecutorOutput(path string) (*pipelinespec.ExecutorOutput, error) {
	output := &pipelinespec.ExecutorOutput{
		ParameterValues: map[string]*structpb.Value{},
		Artifacts:       map[string]*pipelinespec.ArtifactList{},
	}
	if path == "" {
		return output, nil
	}
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return output, nil
	}
	if err != nil {
		return nil, err
	}
	if err := protojson.Unmarshal(raw, output); err != nil {
		return nil, fmt.Errorf("failed to unmarshall ExecutorOutput in file %q: %w", path, err)
	}
	return output, nil
}

// collectOutputParameters takes output parameters from the executor output
// file, else from each parameter's own output file, typed by the component
// spec (collectOutputParameters).
func collectOutputParameters(input *pipelinespec.ExecutorInput, output *pipelinespec.ExecutorOutput, component *pipelinespec.ComponentSpec) (map[string]*structpb.Value, error) {
	values := output.GetParameterValues()
	for name, parameter := range input.GetOutputs().GetParameters() {
		if _, ok := values[name]; ok {
			continue
		}
		definition, ok := component.GetOutputDefinitions().GetParameters()[name]
		if !ok {
			return nil, fmt.Errorf("failed to find output parameter name=%q in component spec", name)
		}
		text, err := os.ReadFile(parameter.GetOutputFile())
		if err != nil {
			return nil, fmt.Errorf("failed to read output parameter %q: %w", name, err)
		}
		value, err := metadata.TextToPbValue(string(text), definition.GetParameterType())
		if err != nil {
			return nil, err
		}
		values[name] = value
	}
	return values, nil
}

// recordOutputArtifacts records each output artifact of the ExecutorInput,
// with the URI and metadata the executor output reports for it merged in
// (uploadOutputArtifacts, mergeRuntimeArtifacts), under the schema of its type
// (getArtifactSchema).
func recordOutputArtifacts(ctx context.Context, client *metadata.Client, input *pipelinespec.ExecutorInput, output *pipelinespec.ExecutorOutput, bucketConfig *objectstore.Config) ([]*metadata.OutputArtifact, error) {
	var recorded []*metadata.OutputArtifact
	for name, list := range input.GetOutputs().GetArtifacts() {
		for _, artifact := range recordedArtifacts(list.GetArtifacts()) {
			if reported := output.GetArtifacts()[name].GetArtifacts(); len(reported) > 0 {
				mergeReported(name, reported[0], artifact)
			}
			schema, err := artifactSchema(artifact.GetType())
			if err != nil {
				return nil, fmt.Errorf("failed to determine schema for output %q: %w", name, err)
			}
			mlmdArtifact, err := client.RecordArtifact(ctx, name, schema, artifact, pb.Artifact_LIVE, bucketConfig)
			if err != nil {
				return nil, fmt.Errorf("unable to produce MLMD artifact for output %q: %w", name, err)
			}
			recorded = append(recorded, mlmdArtifact)
		}
	}
	return recorded, nil
}

// mergeArtifact: the reported URI replaces the provisioned one; reported
// metadata fields are added over the spec's (mergeRuntimeArtifacts).
func mergeArtifact(reported, artifact *pipelinespec.RuntimeArtifact) {
	if reported.GetUri() != "" {
		artifact.Uri = reported.GetUri()
	}
	if reported.GetMetadata() == nil {
		return
	}
	if artifact.Metadata == nil {
		artifact.Metadata = reported.GetMetadata()
		return
	}
	for key, value := range reported.GetMetadata().GetFields() {
		artifact.Metadata.Fields[key] = value
	}
}

// artifactSchema is the schema an artifact type is recorded under: an
// instance schema as is, a schema title as "title: <title>" (getArtifactSchema).
func artifactSchema(t *pipelinespec.ArtifactTypeSchema) (string, error) {
	switch kind := t.GetKind().(type) {
	case *pipelinespec.ArtifactTypeSchema_InstanceSchema:
		return kind.InstanceSchema, nil
	case *pipelinespec.ArtifactTypeSchema_SchemaTitle:
		return "title: " + kind.SchemaTitle, nil
	default:
		return "", fmt.Errorf("unsupported artifact type schema %T", kind)
	}
}

// importer imports an artifact as ImportLauncher.Execute does: an importer
// execution under the parent DAG, the artifact from the importer spec (its
// type, URI and metadata) or a matching one already in the pipeline's context
// (FindMatchedArtifact, unless reimport), published as the task's output.
func importer(args []string) (any, error) {
	fs := flag.NewFlagSet("importer", flag.ContinueOnError)
	var run taskFlags
	run.register(fs)
	dagExecutionID := fs.Int64("dag-execution-id", 0, "the parent DAG's execution ID (root-dag's execution_id)")
	spec, task, client, err := run.driverTask(fs, args, "importer")
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	pipeline, err := client.GetPipeline(ctx, spec.GetPipelineInfo().GetName(), run.runID, "", "", "", "")
	if err != nil {
		return nil, err
	}
	execution, err := client.CreateExecution(ctx, pipeline, &metadata.ExecutionConfig{
		TaskName:      run.task,
		PodName:       podName(run.task),
		PodUID:        podUID,
		Namespace:     run.namespace,
		ExecutionType: metadata.ImporterExecutionTypeName,
		ParentDagID:   *dagExecutionID,
	})
	if err != nil {
		return nil, err
	}
	artifact, err := artifactToImport(ctx, client, task, *dagExecutionID)
	if err != nil {
		return nil, fmt.Errorf("failed to create MLMD artifact from ImporterSpec: %w", err)
	}
	if !task.importer.GetReimport() {
		matched, err := client.FindMatchedArtifact(ctx, artifact, execution.GetPipeline().GetCtxID())
		if err != nil {
			return nil, err
		}
		if matched != nil {
			artifact = matched
		}
	}
	var outputName string
	for name := range task.component.GetOutputDefinitions().GetArtifacts() {
		if outputName != "" {
			return nil, fmt.Errorf("failed to extract output artifact name from componentOutputSpec")
		}
		outputName = name
	}
	output := &metadata.OutputArtifact{
		Name:     outputName,
		Artifact: artifact,
		Schema:   task.component.GetOutputDefinitions().GetArtifacts()[outputName].GetArtifactType().GetInstanceSchema(),
	}
	if err := client.PublishExecution(ctx, execution, nil, []*metadata.OutputArtifact{output}, pb.Execution_COMPLETE); err != nil {
		return nil, fmt.Errorf("failed to publish results of importer execution to ML Metadata: %w", err)
	}
	recorded, err := outputsOf(ctx, client, execution.GetID())
	if err != nil {
		return nil, err
	}
	return map[string]any{"execution_id": execution.GetID(), "output_artifacts": recorded}, nil
}

// artifactToImport builds the MLMD artifact an importer spec describes
// (ImportLauncher.ImportSpecToMLMDArtifact): its type, its URI (a constant or
// the parent DAG's input parameter), its metadata, and session info telling
// readers to take credentials from their environment.
func artifactToImport(ctx context.Context, client *metadata.Client, task *taskParts, dagExecutionID int64) (*pb.Artifact, error) {
	importerSpec := task.importer
	schema, err := artifactSchema(importerSpec.GetTypeSchema())
	if err != nil {
		return nil, fmt.Errorf("failed to get schema from importer spec: %w", err)
	}
	typeID, err := client.GetOrInsertArtifactType(ctx, schema)
	if err != nil {
		return nil, err
	}
	var uri string
	switch source := importerSpec.GetArtifactUri(); {
	case source.GetConstant() != nil:
		uri = source.GetConstant().GetStringValue()
	case source.GetRuntimeParameter() != "":
		name := source.GetRuntimeParameter()
		input, ok := task.spec.GetInputs().GetParameters()[name]
		if !ok {
			return nil, fmt.Errorf("cannot find parameter %s in task input to fetch artifact uri", name)
		}
		dag, err := client.GetDAG(ctx, dagExecutionID)
		if err != nil {
			return nil, err
		}
		dagInputs, _, err := dag.Execution.GetParameters()
		if err != nil {
			return nil, err
		}
		value, ok := dagInputs[input.GetComponentInputParameter()]
		if !ok {
			return nil, fmt.Errorf("error resolving artifact URI: parent DAG does not have input parameter %s", input.GetComponentInputParameter())
		}
		uri = value.GetStringValue()
	default:
		return nil, fmt.Errorf("artifact uri not provided")
	}
	if uri == "" {
		return nil, fmt.Errorf("empty artifact URI")
	}
	// KFP 2.5.0 on also imports oci:// models, without session info; not imitated.
	if strings.HasPrefix(uri, "oci://") {
		return nil, fmt.Errorf("oci:// imports are not imitated here")
	}
	provider, err := objectstore.ParseProviderFromPath(uri)
	if err != nil {
		return nil, fmt.Errorf("no provider scheme found in artifact URI: %s", uri)
	}
	state := pb.Artifact_LIVE
	artifact := &pb.Artifact{
		TypeId:           &typeID,
		State:            &state,
		Uri:              &uri,
		Properties:       map[string]*pb.Value{},
		CustomProperties: map[string]*pb.Value{},
	}
	for key, value := range importerSpec.GetMetadata().GetFields() {
		converted, err := metadata.StructValueToMLMDValue(value)
		if err != nil {
			return nil, fmt.Errorf("failed to convert structValue : %w", err)
		}
		artifact.CustomProperties[key] = converted
	}
	sessionInfo, err := json.Marshal(objectstore.SessionInfo{Provider: provider, Params: map[string]string{"fromEnv": "true"}})
	if err != nil {
		return nil, err
	}
	artifact.CustomProperties["store_session_info"] = metadata.StringValue(string(sessionInfo))
	return artifact, nil
}

// outputsOf reads an execution's output artifacts back from MLMD as the
// driver of a downstream task does (GetOutputArtifactsByExecutionId, then
// ToRuntimeArtifact), next to the stored MLMD artifact itself.
func outputsOf(ctx context.Context, client *metadata.Client, executionID int64) (map[string]any, error) {
	outputs, err := client.GetOutputArtifactsByExecutionId(ctx, executionID)
	if err != nil {
		return nil, err
	}
	result := map[string]any{}
	for name, output := range outputs {
		runtimeArtifact, err := output.ToRuntimeArtifact()
		if err != nil {
			return nil, err
		}
		asInput, err := protojson.Marshal(runtimeArtifact)
		if err != nil {
			return nil, err
		}
		stored, err := protojson.Marshal(output.Artifact)
		if err != nil {
			return nil, err
		}
		result[name] = map[string]json.RawMessage{"mlmd_artifact": stored, "as_input": asInput}
	}
	return result, nil
}
