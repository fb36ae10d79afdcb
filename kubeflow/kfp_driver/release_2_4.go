//go:build !kfp_2_5 && !kfp_2_17

package main

// KFP 2.4.0: the driver options and launcher steps that differ in later releases.

import (
	"fmt"

	"github.com/kubeflow/pipelines/api/v2alpha1/go/pipelinespec"
	"github.com/kubeflow/pipelines/backend/src/v2/driver"
)

const kfpRelease = "2.4.0"

// 2.4.0's driver has no --publish_logs: no executor-logs output.
const publishLogsDefault = false

func setReleaseOptions(opts *driver.Options, driverType, taskName string, publishLogs bool) error {
	if publishLogs {
		return fmt.Errorf("KFP %s's driver does not publish logs (--publish-logs is 2.5.0 on)", kfpRelease)
	}
	return nil
}

// The launcher records the first artifact of each output (uploadOutputArtifacts).
func recordedArtifacts(list []*pipelinespec.RuntimeArtifact) []*pipelinespec.RuntimeArtifact {
	if len(list) == 0 {
		return nil
	}
	return list[:1]
}

func mergeReported(name string, reported, artifact *pipelinespec.RuntimeArtifact) {
	mergeArtifact(reported, artifact)
}
