package marketplace

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/jifu-open/jifu"
)

// Artifacts keeps uploaded modules, content-addressed by the hex SHA-256 of
// their bytes. Put of an existing key is a no-op.
type Artifacts interface {
	Put(ctx context.Context, sha string, data []byte) error
	Get(ctx context.Context, sha string) ([]byte, error) // CodeNotFound when absent
}

// SHA256 returns the artifact key of data.
func SHA256(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

var shaRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

func checkSHA(sha string) error {
	if !shaRE.MatchString(sha) {
		return jifu.Errorf(jifu.CodeInvalid, "marketplace: artifact key %q is not a hex sha256", sha)
	}
	return nil
}

// FSArtifacts keeps artifacts in a directory (./.data/artifacts locally),
// as DIR/ab/abcdef....wasm, written atomically (temp file and rename).
type FSArtifacts struct{ Dir string }

// NewFSArtifacts returns a filesystem artifact store in dir.
func NewFSArtifacts(dir string) *FSArtifacts { return &FSArtifacts{Dir: dir} }

func (f *FSArtifacts) path(sha string) string { return filepath.Join(f.Dir, sha[:2], sha+".wasm") }

// Put implements Artifacts.
func (f *FSArtifacts) Put(_ context.Context, sha string, data []byte) error {
	if err := checkSHA(sha); err != nil {
		return err
	}
	if SHA256(data) != sha {
		return jifu.Errorf(jifu.CodeInvalid, "marketplace: artifact bytes do not hash to %s", sha)
	}
	p := f.path(sha)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "marketplace: artifacts: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".upload-*")
	if err != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "marketplace: artifacts: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return jifu.Errorf(jifu.CodeUnavailable, "marketplace: artifacts: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "marketplace: artifacts: %w", err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "marketplace: artifacts: %w", err)
	}
	return nil
}

// Get implements Artifacts.
func (f *FSArtifacts) Get(_ context.Context, sha string) ([]byte, error) {
	if err := checkSHA(sha); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(f.path(sha))
	if errors.Is(err, os.ErrNotExist) {
		return nil, jifu.Errorf(jifu.CodeNotFound, "marketplace: artifact %s not found", sha)
	}
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeUnavailable, "marketplace: artifacts: %w", err)
	}
	return b, nil
}

// S3Artifacts keeps artifacts in an S3 bucket under Prefix + sha + ".wasm".
// Build the client with aws-sdk-go-v2 (config.LoadDefaultConfig); for an S3
// peer set BaseEndpoint and UsePathStyle in s3.Options.
type S3Artifacts struct {
	Client *s3.Client
	Bucket string
	Prefix string // e.g. "artifacts/"
}

func (a *S3Artifacts) key(sha string) string { return a.Prefix + sha + ".wasm" }

// Put implements Artifacts. The object carries its SHA-256 as a checksum,
// which S3 verifies.
func (a *S3Artifacts) Put(ctx context.Context, sha string, data []byte) error {
	if err := checkSHA(sha); err != nil {
		return err
	}
	if SHA256(data) != sha {
		return jifu.Errorf(jifu.CodeInvalid, "marketplace: artifact bytes do not hash to %s", sha)
	}
	_, err := a.Client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:      aws.String(a.Bucket),
		Key:         aws.String(a.key(sha)),
		Body:        bytes.NewReader(data),
		ContentType: aws.String("application/wasm"),
	})
	if err != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "marketplace: s3 put %s: %w", sha, err)
	}
	return nil
}

// Get implements Artifacts, checking the bytes against their key.
func (a *S3Artifacts) Get(ctx context.Context, sha string) ([]byte, error) {
	if err := checkSHA(sha); err != nil {
		return nil, err
	}
	out, err := a.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(a.Bucket), Key: aws.String(a.key(sha))})
	if err != nil {
		var nk *s3types.NoSuchKey
		if errors.As(err, &nk) {
			return nil, jifu.Errorf(jifu.CodeNotFound, "marketplace: artifact %s not found", sha)
		}
		return nil, jifu.Errorf(jifu.CodeUnavailable, "marketplace: s3 get %s: %w", sha, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, 256<<20))
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeUnavailable, "marketplace: s3 get %s: %w", sha, err)
	}
	if SHA256(b) != sha {
		return nil, jifu.Errorf(jifu.CodeInternal, "marketplace: artifact %s is corrupt (%s)", sha, fmt.Sprint(len(b))+" bytes")
	}
	return b, nil
}
