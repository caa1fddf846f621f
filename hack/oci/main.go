// Command oci writes an OCI image layout, as a tar archive, from directories on disk, with no
// container engine: each -layer directory becomes one layer (files owned by root, times set to
// -created, so the same inputs give the same digests), on top of an empty base, with the
// entrypoint, user, environment and labels given. hack/image.sh drives it.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var layers, labels, env, entrypoint list
	flag.Var(&layers, "layer", "a directory that becomes one layer (repeatable, base first)")
	flag.Var(&labels, "label", "KEY=VALUE, an image label (repeatable)")
	flag.Var(&env, "env", "KEY=VALUE, an environment variable (repeatable)")
	flag.Var(&entrypoint, "entrypoint", "one word of the entrypoint (repeatable)")
	user := flag.String("user", "", "the user the image runs as, UID:GID")
	workdir := flag.String("workdir", "/", "the working directory")
	created := flag.Int64("created", 0, "the creation time and every file's time, Unix seconds")
	ref := flag.String("ref", "", "the image's name and tag, written as org.opencontainers.image.ref.name")
	out := flag.String("out", "", "the OCI layout tar archive to write")
	dir := flag.String("dir", "", "also keep the OCI layout as this directory (replaced)")
	flag.Parse()
	if *out == "" || len(layers) == 0 || len(entrypoint) == 0 {
		fmt.Fprintln(os.Stderr, "oci: -out, -layer and -entrypoint are required")
		os.Exit(2)
	}
	when := time.Unix(*created, 0).UTC()
	cfg := v1.Config{Entrypoint: entrypoint, User: *user, WorkingDir: *workdir, Env: env, Labels: map[string]string{}}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "oci: -label %q is not KEY=VALUE\n", l)
			os.Exit(2)
		}
		cfg.Labels[k] = v
	}
	if err := build(layers, cfg, when, *ref, *out, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "oci:", err)
		os.Exit(1)
	}
}

func build(dirs []string, cfg v1.Config, when time.Time, ref, out, keep string) error {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, d := range dirs {
		data, err := layerTar(d, when)
		if err != nil {
			return fmt.Errorf("layer %s: %w", d, err)
		}
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		}, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return err
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
			Created: v1.Time{Time: when}, CreatedBy: "hack/image.sh: " + filepath.Base(d),
		}})
		if err != nil {
			return err
		}
	}
	img, err := mutate.Config(img, cfg)
	if err != nil {
		return err
	}
	img, err = mutate.CreatedAt(img, v1.Time{Time: when})
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf.OS, cf.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	dir := keep
	if dir == "" {
		if dir, err = os.MkdirTemp("", "oci-layout-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	opts := []layout.Option{layout.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"})}
	if ref != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref}))
	}
	if err := p.AppendImage(img, opts...); err != nil {
		return err
	}
	return tarDir(dir, out, when)
}

// layerTar archives dir's tree with root-owned entries and fixed times, in name order.
func layerTar(dir string, when time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := walk(dir, func(rel string, info fs.FileInfo, path string) error {
		return addEntry(tw, rel, info, path, when)
	})
	if err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// tarDir writes the layout directory itself as a tar archive (what `docker load`, podman,
// skopeo `oci-archive:` and crane read).
func tarDir(dir, out string, when time.Time) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = walk(dir, func(rel string, info fs.FileInfo, path string) error {
		return addEntry(tw, rel, info, path, when)
	})
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func walk(dir string, visit func(rel string, info fs.FileInfo, path string) error) error {
	var paths []string
	err := filepath.Walk(dir, func(path string, _ fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if path != dir {
			paths = append(paths, path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	for _, p := range paths {
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if err := visit(filepath.ToSlash(rel), info, p); err != nil {
			return err
		}
	}
	return nil
}

func addEntry(tw *tar.Writer, rel string, info fs.FileInfo, path string, when time.Time) error {
	link := ""
	if info.Mode()&fs.ModeSymlink != 0 {
		var err error
		if link, err = os.Readlink(path); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return err
	}
	hdr.Name = rel
	if info.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "root", "root"
	hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = when, time.Time{}, time.Time{}
	hdr.Format = tar.FormatPAX
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}
