package warden.admission_test

import rego.v1

registries := {"allowed_registries": ["registry.example.com/"]}

good_image := "registry.example.com/shop/orders:1.4.2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

good_container := {
	"name": "app",
	"image": good_image,
	"resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
}

pod(spec) := {"kind": "Deployment", "namespace": "shop", "name": "orders", "path": "spec.template.spec", "pod": {"metadata": {}, "spec": spec}}

compliant_spec := {"securityContext": {"runAsNonRoot": true}, "containers": [good_container]}

violations_of(spec) := vs if {
	vs := data.warden.admission.violations with input as pod(spec) with data.warden.admission_config as registries
}

rules_of(spec) := {v.rule | some v in violations_of(spec)}

test_compliant_pod_has_no_violations if {
	count(violations_of(compliant_spec)) == 0
}

test_privileged_container_is_named_with_its_field if {
	c := object.union(good_container, {"securityContext": {"privileged": true}})
	vs := violations_of(object.union(compliant_spec, {"containers": [c]}))
	some v in vs
	v.rule == "no-privileged"
	v.container == "app"
	v.field == "spec.template.spec.containers[0].securityContext.privileged"
}

test_host_network_pid_and_ipc_are_refused if {
	vs := violations_of(object.union(compliant_spec, {"hostNetwork": true, "hostPID": true, "hostIPC": true}))
	fields := {v.field | some v in vs; v.rule == "no-host-namespaces"}
	fields == {"spec.template.spec.hostNetwork", "spec.template.spec.hostPID", "spec.template.spec.hostIPC"}
}

test_image_without_digest_is_flagged if {
	c := object.union(good_container, {"image": "registry.example.com/shop/orders:1.4.2"})
	rules_of(object.union(compliant_spec, {"containers": [c]})) == {"image-digest"}
}

test_image_from_unlisted_registry_is_flagged if {
	c := object.union(good_container, {"image": "docker.io/library/nginx:1.27@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"})
	rules_of(object.union(compliant_spec, {"containers": [c]})) == {"allowed-registry"}
}

test_latest_and_untagged_images_are_flagged if {
	c1 := object.union(good_container, {"name": "a", "image": "registry.example.com/shop/orders:latest"})
	c2 := object.union(good_container, {"name": "b", "image": "registry.example.com/shop/orders"})
	c3 := object.union(good_container, {"name": "c", "image": "registry.example.com:5000/shop/orders:2.0"})
	vs := violations_of(object.union(compliant_spec, {"containers": [c1, c2, c3]}))
	{v.container | some v in vs; v.rule == "no-latest-tag"} == {"a", "b"}
}

test_missing_limits_are_reported_per_resource if {
	c := object.remove(good_container, ["resources"])
	vs := violations_of(object.union(compliant_spec, {"containers": [c]}))
	{v.field | some v in vs; v.rule == "resource-limits"} == {
		"spec.template.spec.containers[0].resources.limits.cpu",
		"spec.template.spec.containers[0].resources.limits.memory",
	}
}

test_init_containers_are_checked_too if {
	c := object.union(good_container, {"name": "init", "securityContext": {"privileged": true}})
	vs := violations_of(object.union(compliant_spec, {"initContainers": [c]}))
	some v in vs
	v.field == "spec.template.spec.initContainers[0].securityContext.privileged"
}

test_root_is_refused_unless_pod_or_container_says_non_root if {
	rules_of({"containers": [good_container]}) == {"run-as-non-root"}
	c := object.union(good_container, {"securityContext": {"runAsNonRoot": true}})
	count(violations_of({"containers": [c]})) == 0
	c2 := object.union(good_container, {"securityContext": {"runAsNonRoot": false}})
	rules_of(object.union(compliant_spec, {"containers": [c2]})) == {"run-as-non-root"}
}

test_only_the_verified_interception_init_may_run_as_root if {
	init := object.union(good_container, {"name": "warden-init", "securityContext": {"runAsNonRoot": false, "runAsUser": 0}})
	spec := object.union(compliant_spec, {"initContainers": [init]})
	rules_of(spec) == {"run-as-non-root"}
	exempt := object.union(pod(spec), {"interception_init": {"list": "initContainers", "index": 0}})
	count(data.warden.admission.violations) == 0 with input as exempt with data.warden.admission_config as registries
	# The exemption names one position: the same container second in line is refused.
	spec2 := object.union(compliant_spec, {"initContainers": [good_container, init]})
	exempt2 := object.union(pod(spec2), {"interception_init": {"list": "initContainers", "index": 0}})
	{v.rule | some v in data.warden.admission.violations} == {"run-as-non-root"} with input as exempt2 with data.warden.admission_config as registries
}
