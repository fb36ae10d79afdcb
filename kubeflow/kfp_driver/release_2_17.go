//go:build kfp_2_17

package main

// KFP 2.17.0: the clients, driver options and launcher steps that differ from
// 2.5.0 (with release_from_2_5.go).

import (
	"context"

	"github.com/kubeflow/pipelines/api/v2alpha1/go/pipelinespec"
	api "github.com/kubeflow/pipelines/backend/api/v1beta1/go_client"
	"github.com/kubeflow/pipelines/backend/src/v2/cacheutils"
	"github.com/kubeflow/pipelines/backend/src/v2/common/plugins"
	"github.com/kubeflow/pipelines/backend/src/v2/config"
	"github.com/kubeflow/pipelines/backend/src/v2/driver"
	"github.com/kubeflow/pipelines/backend/src/v2/metadata"
)

const kfpRelease = "2.17.0"

// setReleaseOptions sets the options 2.5.0 added (setOptionsFrom2_5) and those
// added since, as cmd/driver/main.go does from the flags the Argo workflow passes.
func setReleaseOptions(opts *driver.Options, driverType, taskName string, publishLogs bool) error {
	setOptionsFrom2_5(opts, publishLogs)
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
