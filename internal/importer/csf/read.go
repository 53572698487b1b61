package csf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/scanwarden/scanwarden/internal/importer/importutil"
)

// ReadDir reads a CSF directory (usually /etc/csf) as `scanwarden import
// csf` does: csf.conf, which must be there, and whichever of Lists exist.
// path may also name the csf.conf itself (or a copy of it): the lists are
// then read from its directory. Only regular files are read, each at most
// MaxConfSize or MaxListSize bytes; Include lines are followed by
// Input.ReadInclude, with the same limits.
func ReadDir(path string) (Input, error) {
	in := Input{Dir: filepath.Clean(path), Files: make(map[string][]byte)}
	st, err := os.Stat(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return in, fmt.Errorf("%s: %w", path, err)
	}
	conf := filepath.Join(in.Dir, "csf.conf")
	if !st.IsDir() {
		in.Dir, conf = filepath.Dir(in.Dir), in.Dir
		in.ConfName = filepath.Base(conf)
	}
	if in.Files["csf.conf"], err = importutil.ReadRegular(conf, MaxConfSize, "CSF"); err != nil {
		return in, err
	}
	for _, name := range Lists {
		data, err := importutil.ReadRegular(filepath.Join(in.Dir, name), MaxListSize, "CSF")
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return in, err
		}
		in.Files[name] = data
	}
	in.ReadInclude = func(p string) ([]byte, error) { return importutil.ReadRegular(p, MaxListSize, "CSF") }
	return in, nil
}
