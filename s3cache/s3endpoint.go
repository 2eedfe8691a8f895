package s3cache

// S3Bucket: endpoint resolution for a custom endpoint.

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyauth "github.com/aws/smithy-go/auth"
	smithyendpoints "github.com/aws/smithy-go/endpoints"
)

// cachedEndpoints memoizes the SDK's endpoint rules for a fixed custom
// endpoint: evaluating them compiles regular expressions on every request
// (a seventh of the CPU of a push of small paths), and with the endpoint
// fixed their result does not depend on the object key.
type cachedEndpoints struct {
	base s3.EndpointResolverV2
	mu   sync.Mutex
	m    map[string]smithyendpoints.Endpoint
}

func (c *cachedEndpoints) ResolveEndpoint(ctx context.Context, p s3.EndpointParameters) (smithyendpoints.Endpoint, error) {
	p.Key, p.Prefix, p.CopySource = nil, nil, nil
	k, err := json.Marshal(p)
	if err != nil {
		return c.base.ResolveEndpoint(ctx, p)
	}
	c.mu.Lock()
	e, ok := c.m[string(k)]
	c.mu.Unlock()
	if !ok {
		if e, err = c.base.ResolveEndpoint(ctx, p); err != nil {
			return e, err
		}
		c.mu.Lock()
		c.m[string(k)] = e
		c.mu.Unlock()
	}
	return cloneEndpoint(e), nil
}

// cloneEndpoint copies what the SDK may change of a resolved endpoint: its
// headers, its properties and the auth options among them (the SDK merges
// its own signing properties into those).
func cloneEndpoint(e smithyendpoints.Endpoint) smithyendpoints.Endpoint {
	out := e
	out.Headers = e.Headers.Clone()
	out.Properties = smithy.Properties{}
	out.Properties.SetAll(&e.Properties)
	if opts, ok := smithyauth.GetAuthOptions(&e.Properties); ok {
		clones := make([]*smithyauth.Option, len(opts))
		for i, o := range opts {
			c := *o
			c.IdentityProperties, c.SignerProperties = smithy.Properties{}, smithy.Properties{}
			c.IdentityProperties.SetAll(&o.IdentityProperties)
			c.SignerProperties.SetAll(&o.SignerProperties)
			clones[i] = &c
		}
		smithyauth.SetAuthOptions(&out.Properties, clones)
	}
	return out
}
