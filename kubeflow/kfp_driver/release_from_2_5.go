//go:build kfp_2_5 || kfp_2_17

package main

// KFP 2.5.0 and later (2.5.0, 2.17.0): the driver options and launcher steps
// that 2.5.0 changed from 2.4.0 and later releases kept.

import (
	"strconv"

	"github.com/kubeflow/pipelines/api/v2alpha1/go/pipelinespec"
	"github.com/kubeflow/pipelines/backend/src/apiserver/config/proxy"
	"github.com/kubeflow/pipelines/backend/src/v2/driver"
)

// The driver's own --publish_logs default, and the API server's PUBLISH_LOGS
// in KFP's manifests: every task gets an executor-logs output.
const publishLogsDefault = true

// setOptionsFrom2_5 sets the options 2.5.0 added, as cmd/driver/main.go does
// from the flags the Argo workflow passes.
func setOptionsFrom2_5(opts *driver.Options, publishLogs bool) {
	// The API server's HTTP_PROXY, HTTPS_PROXY and NO_PROXY: unset.
	proxy.InitializeConfig("", "", "")
	opts.PublishLogs = strconv.FormatBool(publishLogs)
	opts.PipelineLogLevel = "1"
	// {{workflow.name}} and the run's display name, for the
	// {{$.pipeline_job_resource_name}} and {{$.pipeline_job_name}} placeholders.
	opts.RunName = opts.RunID
	opts.RunDisplayName = opts.RunID
}

// The launcher records every artifact of each output (uploadOutputArtifacts).
func recordedArtifacts(list []*pipelinespec.RuntimeArtifact) []*pipelinespec.RuntimeArtifact {
	return list
}
