# Platform guardrails for every pod the cluster admits (Deployments, StatefulSets, DaemonSets, Jobs,
# CronJobs, bare Pods). The webhook hands over the pod template, already located in the object:
#   input.pod   {"metadata": …, "spec": …}     the pod (template) to check
#   input.path  "spec.template.spec"            where the pod spec sits in the object (for field paths)
#   input.kind, input.namespace, input.name
#   input.interception_init  {"list": "initContainers", "index": 0} when that container is Warden's
#                            verified interception init (the webhook checks its name and image)
# Each violation names the rule, the field and the container, and says what to do.
package warden.admission

import rego.v1

# Registries images may come from (prefix match on the full image reference); see data.json.
default allowed_registries := []

allowed_registries := data.warden.admission_config.allowed_registries

# Every container of the pod, with the list it is in and its index (for the field path).
containers contains {"list": list, "index": i, "container": c} if {
	some list in ["initContainers", "containers", "ephemeralContainers"]
	some i, c in object.get(input.pod.spec, list, [])
}

field(ct, rest) := sprintf("%s.%s[%d].%s", [input.path, ct.list, ct.index, rest])

# --- no-privileged -----------------------------------------------------------------------------
violations contains v if {
	some ct in containers
	ct.container.securityContext.privileged == true
	v := {
		"rule": "no-privileged",
		"container": ct.container.name,
		"field": field(ct, "securityContext.privileged"),
		"msg": sprintf("container \"%s\" runs privileged: it would have full access to the node; remove securityContext.privileged (or set it to false)", [ct.container.name]),
	}
}

# --- no-host-namespaces ------------------------------------------------------------------------
host_namespaces := {"hostNetwork": "the node's network", "hostPID": "the node's processes", "hostIPC": "the node's IPC"}

violations contains v if {
	some key, what in host_namespaces
	input.pod.spec[key] == true
	v := {
		"rule": "no-host-namespaces",
		"field": sprintf("%s.%s", [input.path, key]),
		"msg": sprintf("the pod sets %s: true and would share %s; remove %s", [key, what, key]),
	}
}

# --- image-digest ------------------------------------------------------------------------------
violations contains v if {
	some ct in containers
	not contains(ct.container.image, "@sha256:")
	v := {
		"rule": "image-digest",
		"container": ct.container.name,
		"field": field(ct, "image"),
		"msg": sprintf("container \"%s\" uses image \"%s\" without a digest; pin it as <image>@sha256:<digest> so what runs is what was reviewed", [ct.container.name, ct.container.image]),
	}
}

# --- allowed-registry --------------------------------------------------------------------------
from_allowed_registry(image) if {
	some prefix in allowed_registries
	startswith(image, prefix)
}

violations contains v if {
	some ct in containers
	not from_allowed_registry(ct.container.image)
	v := {
		"rule": "allowed-registry",
		"container": ct.container.name,
		"field": field(ct, "image"),
		"msg": sprintf("container \"%s\" uses image \"%s\" from a registry that is not allowed; use one of: %s", [ct.container.name, ct.container.image, concat(", ", allowed_registries)]),
	}
}

# --- no-latest-tag -----------------------------------------------------------------------------
# The tag of an image reference: after the last ":" of the last path segment, digest removed.
image_tag(image) := tag if {
	name := split(image, "@")[0]
	parts := split(name, "/")
	last := parts[count(parts) - 1]
	contains(last, ":")
	tag := split(last, ":")[1]
}

latest(image) if image_tag(image) == "latest"

latest(image) if {
	not image_tag(image)
	not contains(image, "@")
}

violations contains v if {
	some ct in containers
	latest(ct.container.image)
	v := {
		"rule": "no-latest-tag",
		"container": ct.container.name,
		"field": field(ct, "image"),
		"msg": sprintf("container \"%s\" uses image \"%s\", which is (implicitly) tagged latest; use a fixed version tag and a digest", [ct.container.name, ct.container.image]),
	}
}

# --- resource-limits ---------------------------------------------------------------------------
violations contains v if {
	some ct in containers
	ct.list != "ephemeralContainers"
	some resource in ["cpu", "memory"]
	not ct.container.resources.limits[resource]
	v := {
		"rule": "resource-limits",
		"container": ct.container.name,
		"field": field(ct, sprintf("resources.limits.%s", [resource])),
		"msg": sprintf("container \"%s\" has no %s limit; set resources.limits.%s", [ct.container.name, resource, resource]),
	}
}

# --- run-as-non-root ---------------------------------------------------------------------------
# A container runs as non-root if it says so, or the pod does and the container does not override it.
non_root(c) if c.securityContext.runAsNonRoot == true

non_root(c) if {
	not has_run_as_non_root(c)
	input.pod.spec.securityContext.runAsNonRoot == true
}

has_run_as_non_root(c) if object.get(c, ["securityContext", "runAsNonRoot"], null) != null

# Warden's interception init runs as root to write iptables rules (with NET_ADMIN/NET_RAW only).
interception_init(ct) if {
	ct.list == input.interception_init.list
	ct.index == input.interception_init.index
}

violations contains v if {
	some ct in containers
	ct.list != "ephemeralContainers"
	not interception_init(ct)
	not non_root(ct.container)
	v := {
		"rule": "run-as-non-root",
		"container": ct.container.name,
		"field": field(ct, "securityContext.runAsNonRoot"),
		"msg": sprintf("container \"%s\" may run as root; set securityContext.runAsNonRoot: true on the pod or the container", [ct.container.name]),
	}
}
