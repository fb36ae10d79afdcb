//go:build kfp_2_17

package main

// KFP 2.17.0: the clients, driver options and launcher steps that differ from 2.5.0.

import (
	"context"
	"strconv"

	"github.com/kubeflow/pipelines/api/v2alpha1/go/pipelinespec"
	api "github.com/kubeflow/pipelines/backend/api/v1beta1/go_client"
	"github.com/kubeflow/pipelines/backend/src/apiserver/config/proxy"
	"github.com/kubeflow/pipelines/backend/src/v2/cacheutils"
	"github.com/kubeflow/pipelines/backend/src/v2/common/plugins"
	"github.com/kubeflow/pipelines/backend/src/v2/config"
	"github.com/kubeflow/pipelines/backend/src/v2/driver"
	"github.com/kubeflow/pipelines/backend/src/v2/metadata"
)

const kfpRelease = "2.17.0"

// The driver's own --publish_logs default, and the API server's PUBLISH_LOGS
// in KFP's manifests: every task gets an executor-logs output.
const publishLogsDefault = true

// setReleaseOptions sets the options 2.5.0 and later added, as
// cmd/driver/main.go does from the flags the Argo workflow passes.
func setReleaseOptions(opts *driver.Options, driverType, taskName string, publishLogs bool) error {
	// The API server's HTTP_PROXY, HTTPS_PROXY and NO_PROXY: unset.
	proxy.InitializeConfig("", "", "")
	opts.PublishLogs = strconv.FormatBool(publishLogs)
	opts.PipelineLogLevel = "1"
	// {{workflow.name}} and the run's display name, for the
	// {{$.pipeline_job_resource_name}} and {{$.pipeline_job_name}} placeholders.
	opts.RunName = opts.RunID
	opts.RunDisplayName = opts.RunID
	opts.DriverType = driverType
	opts.TaskName = taskName
	// What the compiler passes: the services' in-cluster names. They reach
	// the launcher's command in the pod spec patch, nothing else here.
	opts.MLPipelineServerAddress = config.GetMLPipelineServerConfig().Address
	opts.MLPipelineServerPort = config.GetMLPipelineServerConfig().Port
	opts.MLMDServerAddress = metadata.GetMetadataConfig().Address
	opts.MLMDServerPort = metadata.GetMetadataConfig().Port
	dispatcher, err := plugins.GetPluginDispatcher()
	opts.PluginDispatcher = dispatcher
	return err
}

func newMetadataClient(host, port string) (*metadata.Client, error) {
	return metadata.NewClient(host, port, nil)
}

func runContainerDriver(ctx context.Context, opts driver.Options, client *metadata.Client, cacheHost, cachePort string) (*driver.Execution, error) {
	cacheClient, err := cacheutils.NewClient(cacheHost, cachePort, opts.CacheDisabled, nil)
	if err != nil {
		return nil, err
	}
	return driver.Container(ctx, opts, client, cacheClient)
}

func createCacheEntry(ctx context.Context, cacheHost, cachePort string, entry *api.Task) error {
	cacheClient, err := cacheutils.NewClient(cacheHost, cachePort, false, nil)
	if err != nil {
		return err
	}
	return cacheClient.CreateExecutionCache(ctx, entry)
}

// The launcher records every artifact of each output (uploadOutputArtifacts).
func recordedArtifacts(list []*pipelinespec.RuntimeArtifact) []*pipelinespec.RuntimeArtifact {
	return list
}

// The launcher keeps executor-logs where it put it, and takes a reported
// custom path too (uploadOutputArtifacts, mergeRuntimeArtifacts).
func mergeReported(name string, reported, artifact *pipelinespec.RuntimeArtifact) {
	if name == "executor-logs" {
		return
	}
	mergeArtifact(reported, artifact)
	if reported.GetCustomPath() != "" {
		artifact.CustomPath = reported.CustomPath
	}
}
