//go:build !kfp_2_17

package main

// KFP 2.4.0 and 2.5.0: the metadata and cache clients, as cmd/driver and
// cmd/launcher-v2 create them.

import (
	"context"
	"os"

	api "github.com/kubeflow/pipelines/backend/api/v1beta1/go_client"
	"github.com/kubeflow/pipelines/backend/src/v2/cacheutils"
	"github.com/kubeflow/pipelines/backend/src/v2/driver"
	"github.com/kubeflow/pipelines/backend/src/v2/metadata"
)

func newMetadataClient(host, port string) (*metadata.Client, error) {
	return metadata.NewClient(host, port)
}

// newCacheClient connects to the API server at host:port, which the cache
// client finds in its pod's environment (cacheutils.cacheDefaultEndpoint).
func newCacheClient(host, port string) (*cacheutils.Client, error) {
	os.Setenv("ML_PIPELINE_SERVICE_HOST", host)
	os.Setenv("ML_PIPELINE_SERVICE_PORT_GRPC", port)
	return cacheutils.NewClient()
}

func runContainerDriver(ctx context.Context, opts driver.Options, client *metadata.Client, cacheHost, cachePort string) (*driver.Execution, error) {
	cacheClient, err := newCacheClient(cacheHost, cachePort)
	if err != nil {
		return nil, err
	}
	return driver.Container(ctx, opts, client, cacheClient)
}

func createCacheEntry(ctx context.Context, cacheHost, cachePort string, entry *api.Task) error {
	cacheClient, err := newCacheClient(cacheHost, cachePort)
	if err != nil {
		return err
	}
	return cacheClient.CreateExecutionCache(ctx, entry)
}
