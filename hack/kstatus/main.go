// Command kstatus reads Kubernetes objects (a JSON List, as `kubectl get -o json` prints it) on
// standard input and prints, one JSON line per object, how GitOps tools read its health:
//
//   - kstatus: the status that sigs.k8s.io/cli-utils computes (Flux's health checks use it);
//   - argocd: with -argocd FILE, the status that the Lua health script for the object's group and
//     kind in FILE (an argocd-cm ConfigMap, keys resource.customizations.health.<group>_<Kind>)
//     returns when run as Argo CD runs it, with gopher-lua and the object as the global `obj`.
//
// It is a test tool of unyo (hack/kstatus/build.sh builds it); it judges nothing itself.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

type verdict struct {
	Kind        string `json:"kind"`
	Namespace   string `json:"namespace,omitempty"`
	Name        string `json:"name"`
	Status      string `json:"status"`
	Message     string `json:"message"`
	Argo        string `json:"argocd,omitempty"`
	ArgoMessage string `json:"argocdMessage,omitempty"`
}

func main() {
	argo := flag.String("argocd", "", "argocd-cm ConfigMap (YAML) holding the Lua health scripts")
	flag.Parse()
	if err := run(os.Stdin, os.Stdout, *argo); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer, argoFile string) error {
	scripts, err := healthScripts(argoFile)
	if err != nil {
		return err
	}
	data, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	var list unstructured.UnstructuredList
	if err := list.UnmarshalJSON(data); err != nil {
		return fmt.Errorf("standard input is not a JSON List: %w", err)
	}
	enc := json.NewEncoder(out)
	for i := range list.Items {
		v, err := judge(&list.Items[i], scripts)
		if err != nil {
			return err
		}
		if err := enc.Encode(v); err != nil {
			return err
		}
	}
	return nil
}

func judge(u *unstructured.Unstructured, scripts map[string]string) (verdict, error) {
	res, err := status.Compute(u)
	if err != nil {
		return verdict{}, fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
	}
	v := verdict{
		Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName(),
		Status: res.Status.String(), Message: res.Message,
	}
	gvk := u.GroupVersionKind()
	if script, ok := scripts[gvk.Group+"_"+gvk.Kind]; ok {
		v.Argo, v.ArgoMessage, err = argoHealth(script, u.Object)
		if err != nil {
			return verdict{}, fmt.Errorf("%s %s: Lua: %w", u.GetKind(), u.GetName(), err)
		}
	}
	return v, nil
}

// healthScripts returns the scripts by "<group>_<Kind>".
func healthScripts(file string) (map[string]string, error) {
	scripts := map[string]string{}
	if file == "" {
		return scripts, nil
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(raw, &cm); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	const prefix = "resource.customizations.health."
	for k, v := range cm.Data {
		if strings.HasPrefix(k, prefix) {
			scripts[strings.TrimPrefix(k, prefix)] = v
		}
	}
	if len(scripts) == 0 {
		return nil, fmt.Errorf("%s: no key starts with %s", file, prefix)
	}
	return scripts, nil
}

// argoHealth runs a health script as Argo CD does: the object as the global table `obj`, the
// script's returned table read for `status` and `message`.
func argoHealth(script string, obj map[string]interface{}) (string, string, error) {
	L := lua.NewState(lua.Options{SkipOpenLibs: false})
	defer L.Close()
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(script); err != nil {
		return "", "", err
	}
	ret, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("the script returned %s, not a table", L.Get(-1).Type())
	}
	return lua.LVAsString(ret.RawGetString("status")), lua.LVAsString(ret.RawGetString("message")), nil
}

func toLua(L *lua.LState, v interface{}) lua.LValue {
	switch x := v.(type) {
	case map[string]interface{}:
		t := L.NewTable()
		for k, e := range x {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case []interface{}:
		t := L.NewTable()
		for _, e := range x {
			t.Append(toLua(L, e))
		}
		return t
	case string:
		return lua.LString(x)
	case bool:
		return lua.LBool(x)
	case int64:
		return lua.LNumber(x)
	case float64:
		return lua.LNumber(x)
	case nil:
		return lua.LNil
	default:
		return lua.LString(fmt.Sprint(x))
	}
}
