package marketplace_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/marketplace"
)

// s3Peer starts an in-process S3 (gofakes3) with a bucket and returns the
// artifact store on it.
func s3Peer(t *testing.T) *marketplace.S3Artifacts {
	t.Helper()
	backend := s3mem.New()
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	client := s3.New(s3.Options{
		Region:       "cn-north-1",
		BaseEndpoint: aws.String(srv.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	if _, err := client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("artifacts")}); err != nil {
		t.Fatal(err)
	}
	return &marketplace.S3Artifacts{Client: client, Bucket: "artifacts", Prefix: "modules/"}
}

func TestArtifactStores(t *testing.T) {
	stores := map[string]marketplace.Artifacts{
		"fs": marketplace.NewFSArtifacts(t.TempDir()),
		"s3": s3Peer(t),
	}
	data := helloWasm(t)
	sha := marketplace.SHA256(data)
	for name, st := range stores {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			_, err := st.Get(ctx, sha)
			wantCode(t, err, jifu.CodeNotFound)
			wantCode(t, st.Put(ctx, "not-a-sha", data), jifu.CodeInvalid)
			wantCode(t, st.Put(ctx, marketplace.SHA256([]byte("other")), data), jifu.CodeInvalid)
			for range 2 { // idempotent
				if err := st.Put(ctx, sha, data); err != nil {
					t.Fatal(err)
				}
			}
			got, err := st.Get(ctx, sha)
			if err != nil || string(got) != string(data) {
				t.Fatalf("get: %d bytes, %v", len(got), err)
			}
			_, err = st.Get(ctx, "../../etc/passwd")
			wantCode(t, err, jifu.CodeInvalid)
		})
	}
}

// TestUploadToS3 runs the upload path with the S3 artifact store.
func TestUploadToS3(t *testing.T) {
	store := s3Peer(t)
	e := newEnv(t, func(c *marketplace.Config) { c.Artifacts = store })
	app, _ := e.newApp(e.dev)
	v := e.approved(e.dev, app, "1.0.0")
	got, err := e.svc.Module(context.Background(), e.reviewer, v.ID)
	if err != nil || marketplace.SHA256(got) != v.SHA256 {
		t.Fatalf("module from S3: %v", err)
	}
}
