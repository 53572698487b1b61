package attribute

import "testing"

func TestParseCgroup(t *testing.T) {
	const id = "4f2a9c1be0d34e5f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f"
	tests := []struct {
		path, unit, container string
	}{
		{"/system.slice/nginx.service", "nginx.service", ""},
		{"/user.slice/user-1000.slice/session-3.scope", "session-3.scope", ""},
		{"/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service", "foo.service", ""},
		{"/system.slice/docker-" + id + ".scope", "", id},
		{"/docker/" + id, "", id},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice/cri-containerd-" + id + ".scope", "", id},
		{"/kubepods/burstable/pod0a1b2c3d-4e5f-6789-abcd-ef0123456789/" + id, "", id},
		{"/machine.slice/libpod-" + id + ".scope", "", id},
		{"/machine.slice/libpod-" + id + ".scope/container", "", id},
		{"/system.slice/crio-" + id + ".scope", "", id},
		{"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id + ".scope", "user@1000.service", id}, // rootless Podman under the user's manager
		{"/machine.slice/libpod-conmon-" + id + ".scope", "libpod-conmon-" + id + ".scope", ""},                       // the monitor, not the container
		{"/system.slice/containerd.service/kubepods-besteffort-pod1.slice:cri-containerd:" + id, "containerd.service", ""},
		{"/", "", ""},
		{"", "", ""},
		{"garbage", "", ""},
		{".service", "", ""},
		{"/system.slice/.scope", "", ""},
		{"/system.slice/bad name.service", "", ""},
		{"/docker/" + id[:63], "", ""},
		{"/docker/" + id + "0", "", ""},
		{"/docker-" + id + ".scope/../../x", "", id},
		{"\x00\xff/\n.service", "", ""},
		{"///", "", ""},
	}
	for _, tt := range tests {
		unit, container := parseCgroup(tt.path)
		if unit != tt.unit || container != tt.container {
			t.Errorf("parseCgroup(%q) = %q, %q; want %q, %q", tt.path, unit, container, tt.unit, tt.container)
		}
	}
}

func FuzzParseCgroup(f *testing.F) {
	f.Add("/system.slice/nginx.service")
	f.Add("/kubepods/burstable/pod1/0123")
	f.Fuzz(func(t *testing.T, path string) {
		unit, container := parseCgroup(path) // must not panic
		if container != "" && !isHex64(container) {
			t.Errorf("parseCgroup(%q) container %q is not 64 hex digits", path, container)
		}
		if unit != "" && !isUnitName(unit) {
			t.Errorf("parseCgroup(%q) unit %q is not a unit name", path, unit)
		}
	})
}
