//go:build kfp_2_5

package main

// KFP 2.5.0: the driver options and launcher steps that differ from 2.4.0
// (with release_from_2_5.go).

import (
	"github.com/kubeflow/pipelines/api/v2alpha1/go/pipelinespec"
	"github.com/kubeflow/pipelines/backend/src/v2/driver"
)

const kfpRelease = "2.5.0"

// setReleaseOptions sets the options 2.5.0 added (setOptionsFrom2_5).
func setReleaseOptions(opts *driver.Options, driverType, taskName string, publishLogs bool) error {
	setOptionsFrom2_5(opts, publishLogs)
	return nil
}

func mergeReported(name string, reported, artifact *pipelinespec.RuntimeArtifact) {
	mergeArtifact(reported, artifact)
}
