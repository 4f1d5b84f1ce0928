//go:build unix

package natsserver

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockStore takes an exclusive lock on dir, so that two processes never
// run JetStream on one store. The lock ends with the returned file's close
// or with the process.
func lockStore(dir string) (*os.File, error) {
	path := filepath.Join(dir, ".jetmon.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("nats server: lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		data, _ := os.ReadFile(path)
		_ = f.Close()
		holder := strings.TrimSpace(string(data))
		if holder == "" {
			holder = "another process"
		} else {
			holder = "process " + holder
		}
		return nil, fmt.Errorf("nats server: store dir %s is in use by %s; stop it or choose another data dir", dir, holder)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}
