// Command kfp-argo-compile runs Kubeflow Pipelines' own backend compiler
// (backend/src/v2/compiler/argocompiler, KFP backend 2.4.0) on a compiled
// pipeline spec, the way the KFP API server does when a run is created, and
// prints the Argo Workflow it would submit. If the backend would refuse the
// spec, it prints the backend's error and exits 1.
//
//	kfp-argo-compile --spec SPEC.yaml --pipeline-root gs://bucket/root \
//	    [--param name=value ...] [--out workflow.yaml]
//
// The reading and wrapping below mirror backend/src/apiserver/template
// (NewV2SpecTemplate, RunWorkflow, validatePipelineJobInputs and
// modelToPipelineJobRuntimeConfig) and ResourceManager.CreateRun (Argo
// validation) at 2.4.0; the template package is not imported
// because it drags in the whole API server (database, Tekton, ...).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/argoproj/argo-workflows/v3/workflow/validate"
	"github.com/kubeflow/pipelines/api/v2alpha1/go/pipelinespec"
	"github.com/kubeflow/pipelines/backend/src/v2/compiler/argocompiler"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	goyaml "gopkg.in/yaml.v3"
	"sigs.k8s.io/yaml"
)

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

func main() {
	specPath := flag.String("spec", "", "compiled pipeline spec (YAML: PipelineSpec, optionally a second document with the platform spec)")
	pipelineRoot := flag.String("pipeline-root", "", "pipeline root (RuntimeConfig.gcsOutputDirectory), e.g. gs://bucket/root")
	out := flag.String("out", "", "write the Argo Workflow YAML here (default: stdout)")
	runParams := params{}
	flag.Var(runParams, "param", "run parameter name=value (repeatable); unset parameters keep the spec's defaults")
	flag.Parse()
	if *specPath == "" || *pipelineRoot == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: kfp-argo-compile --spec SPEC.yaml --pipeline-root ROOT [--param name=value ...] [--out workflow.yaml]")
		os.Exit(2)
	}
	if err := run(*specPath, *pipelineRoot, runParams, *out); err != nil {
		fmt.Fprintf(os.Stderr, "kfp-argo-compile: %v\n", err)
		os.Exit(1)
	}
}

func run(specPath, pipelineRoot string, runParams params, out string) error {
	raw, err := os.ReadFile(specPath)
	if err != nil {
		return err
	}
	spec, platform, err := readSpec(raw)
	if err != nil {
		return err
	}
	job, err := pipelineJob(spec, pipelineRoot, runParams)
	if err != nil {
		return err
	}
	// As the API server: only the "kubernetes" platform reaches the compiler.
	var k8s *pipelinespec.SinglePlatformSpec
	if platform != nil {
		k8s = platform.GetPlatforms()["kubernetes"]
	}
	wf, err := argocompiler.Compile(job, k8s, nil)
	if err != nil {
		return fmt.Errorf("Failed to compile job: %w", err)
	}
	// The server then validates the Workflow with Argo's own validator
	// (ResourceManager.CreateRun -> Workflow.Validate(false, false)), as the
	// Argo controller (v3.4.17 in KFP 2.4.0's manifests) does again later.
	if err := validate.ValidateWorkflow(nil, nil, wf, validate.ValidateOpts{}); err != nil {
		return fmt.Errorf("Failed to validate workflow: %w", err)
	}
	text, err := yaml.Marshal(wf)
	if err != nil {
		return err
	}
	if out == "" {
		_, err = os.Stdout.Write(text)
		return err
	}
	return os.WriteFile(out, text, 0o644)
}

// readSpec splits the upload into the PipelineSpec and the optional platform
// spec, and applies the API server's upload checks (NewV2SpecTemplate).
func readSpec(raw []byte) (*pipelinespec.PipelineSpec, *pipelinespec.PlatformSpec, error) {
	var spec *pipelinespec.PipelineSpec
	var platform *pipelinespec.PlatformSpec
	var specErr error // why the first document was not a PipelineSpec
	dec := goyaml.NewDecoder(bytes.NewReader(raw))
	for {
		var doc map[string]interface{}
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("unable to decode yaml document: %w", err)
		}
		if doc == nil {
			continue
		}
		// YAML -> JSON -> proto, exactly as the server does: protojson is
		// strict, so an unknown field makes the document "not a spec".
		js, err := json.Marshal(doc)
		if err != nil {
			return nil, nil, fmt.Errorf("cannot convert v2 pipeline spec to json format: %w", err)
		}
		var s pipelinespec.PipelineSpec
		err = protojson.Unmarshal(js, &s)
		if err == nil && s.GetPipelineInfo().GetName() != "" && s.GetRoot() != nil {
			if spec != nil {
				return nil, nil, errors.New("multiple pipeline specs provided")
			}
			spec = &s
			continue
		}
		var p pipelinespec.PlatformSpec
		if protojson.Unmarshal(js, &p) == nil && p.GetPlatforms()["kubernetes"] != nil {
			if platform != nil {
				return nil, nil, errors.New("multiple platform specs provided")
			}
			platform = &p
		} else if specErr == nil && err != nil {
			specErr = err
		}
		// Anything else is ignored, as by the server.
	}
	if spec == nil {
		// The server only says "no pipeline spec is provided"; say why.
		return nil, nil, fmt.Errorf("no pipeline spec is provided (invalid v2 pipeline spec: %v)", specErr)
	}
	if spec.GetSchemaVersion() != "2.1.0" {
		return nil, nil, fmt.Errorf("KFP only supports schema version 2.1.0, but the pipeline spec has version %s", spec.GetSchemaVersion())
	}
	if ok, _ := regexp.MatchString("[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", spec.GetPipelineInfo().GetName()); !ok {
		return nil, nil, errors.New("invalid v2 pipeline spec: name should consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")
	}
	return spec, platform, nil
}

// pipelineJob wraps the spec as the server does at run creation: the spec as a
// Struct, RuntimeConfig with the user's parameters and the pipeline root.
// Defaults are not copied here; argocompiler.Compile fills them itself.
func pipelineJob(spec *pipelinespec.PipelineSpec, pipelineRoot string, runParams params) (*pipelinespec.PipelineJob, error) {
	js, err := protojson.Marshal(spec)
	if err != nil {
		return nil, err
	}
	specStruct := &structpb.Struct{}
	if err := protojson.Unmarshal(js, specStruct); err != nil {
		return nil, err
	}
	defs := spec.GetRoot().GetInputDefinitions().GetParameters()
	values := map[string]*structpb.Value{}
	var extra []string
	for name, text := range runParams {
		def, ok := defs[name]
		if !ok {
			extra = append(extra, name)
			continue
		}
		v, err := paramValue(def.GetParameterType(), text)
		if err != nil {
			return nil, fmt.Errorf("invalid pipeline job inputs: input parameter %s: %w", name, err)
		}
		values[name] = v
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return nil, fmt.Errorf("invalid pipeline job inputs: parameter(s) provided are not required by pipeline: %s", strings.Join(extra, ", "))
	}
	for name, def := range defs {
		if _, ok := values[name]; !ok && !def.GetIsOptional() && def.GetDefaultValue() == nil {
			return nil, fmt.Errorf("invalid pipeline job inputs: parameter %s is not optional, yet has neither default value nor user provided value", name)
		}
	}
	return &pipelinespec.PipelineJob{
		PipelineSpec: specStruct,
		RuntimeConfig: &pipelinespec.PipelineJob_RuntimeConfig{
			ParameterValues:    values,
			GcsOutputDirectory: pipelineRoot,
		},
	}, nil
}

// paramValue types a --param value the way the KFP client would send it: a
// string for STRING parameters, JSON (number, bool, list, object) otherwise.
func paramValue(t pipelinespec.ParameterType_ParameterTypeEnum, text string) (*structpb.Value, error) {
	if t == pipelinespec.ParameterType_STRING {
		return structpb.NewStringValue(text), nil
	}
	v := &structpb.Value{}
	if err := protojson.Unmarshal([]byte(text), v); err != nil {
		return nil, fmt.Errorf("%s value %q is not JSON: %w", t, text, err)
	}
	// The server's type check (validatePipelineJobInputs).
	ok := false
	switch t {
	case pipelinespec.ParameterType_NUMBER_DOUBLE, pipelinespec.ParameterType_NUMBER_INTEGER:
		_, ok = v.GetKind().(*structpb.Value_NumberValue)
	case pipelinespec.ParameterType_BOOLEAN:
		_, ok = v.GetKind().(*structpb.Value_BoolValue)
	case pipelinespec.ParameterType_LIST:
		_, ok = v.GetKind().(*structpb.Value_ListValue)
	case pipelinespec.ParameterType_STRUCT:
		_, ok = v.GetKind().(*structpb.Value_StructValue)
	}
	if !ok {
		return nil, fmt.Errorf("value %q does not fit parameter type %s", text, t)
	}
	return v, nil
}
