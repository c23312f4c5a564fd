package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/flickdev/flick/pkg/apis"
)

func newRouteCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "route", Aliases: []string{"httptrigger", "ht"},
		Short: "Create, list and delete HTTP routes: a host, path and methods to functions or services (Fission's HTTP trigger)"}
	var functions, services, methods []string
	var path, host string
	var prefix bool
	create := &cobra.Command{
		Use:   "create NAME --url PATH (--function F | --service S)",
		Short: "Create or update an HTTP route",
		Example: `  flick route create get-user --function users --url /api/users/{id} --method GET
  flick route create api --service api --url /api --prefix --host shop.example.com
  flick route create checkout --function checkout-v1=90 --function checkout-v2=10 --url /checkout --method POST`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec := apis.HTTPRouteSpec{Path: path, Host: host, Methods: methods}
			if prefix {
				spec.PathType = apis.PathPrefix
			}
			for _, list := range []struct {
				flag  string
				names []string
			}{{"--function", functions}, {"--service", services}} {
				for _, f := range list.names {
					name, w, weighted := strings.Cut(f, "=")
					t := apis.RouteTarget{}
					if weighted {
						n, err := strconv.Atoi(w)
						if err != nil {
							return fmt.Errorf("%s %q: use NAME or NAME=PERCENT", list.flag, f)
						}
						t.Weight = n
					}
					if list.flag == "--function" {
						t.Function = name
					} else {
						t.Service = name
					}
					spec.To = append(spec.To, t)
				}
			}
			if len(spec.To) == 0 {
				return fmt.Errorf("--function or --service is required")
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			rt := &apis.HTTPRoute{TypeMeta: apis.TypeMeta{APIVersion: "flick.dev/v1", Kind: "Route"},
				Metadata: apis.ObjectMeta{Name: args[0], Namespace: o.namespace}, Spec: spec}
			return applyAndWait(cmd, c, rt, "route", false, 0)
		},
	}
	f := create.Flags()
	f.StringVar(&path, "url", "", "the path: /api/users/{id} ({name} segments are parameters, passed as X-Flick-Param-Name headers)")
	f.StringVar(&host, "host", "", "the only host the route answers (default any)")
	f.BoolVar(&prefix, "prefix", false, "match the path and everything below it")
	f.StringArrayVar(&methods, "method", nil, "an HTTP method the route takes (repeatable; default every method)")
	f.StringArrayVar(&functions, "function", nil, "a function, or FUNCTION=PERCENT to split (repeatable)")
	f.StringArrayVar(&services, "service", nil, "a service, or SERVICE=PERCENT to split (repeatable)")
	cmd.AddCommand(create, listCmd(o, "routes"), deleteCmd(o, "route"))
	return cmd
}

// printRoutes lists HTTP routes: what they match and where they send it.
func printRoutes(out io.Writer, items []*apis.Resource, withNS bool) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if withNS {
		fmt.Fprint(tw, "NAMESPACE\t")
	}
	fmt.Fprintln(tw, "NAME\tHOST\tPATH\tMETHODS\tTO\tREADY\tREASON\tAGE")
	for _, r := range items {
		var spec apis.HTTPRouteSpec
		var st apis.HTTPRouteStatus
		_ = json.Unmarshal(r.Spec, &spec)
		_ = json.Unmarshal(r.Status, &st)
		ready, reason := readiness(st.Conditions)
		path := spec.Path
		if spec.PathType == apis.PathPrefix {
			path += " (prefix)"
		}
		var to []string
		for _, t := range spec.To {
			name := "fn:" + t.Function
			if t.Service != "" {
				name = "svc:" + t.Service
			}
			if len(spec.To) > 1 {
				name += "=" + strconv.Itoa(t.Weight)
			}
			to = append(to, name)
		}
		methods := strings.Join(spec.Methods, ",")
		if withNS {
			fmt.Fprintf(tw, "%s\t", r.Metadata.Namespace)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Metadata.Name, orDash(spec.Host), path, orDash(methods), strings.Join(to, ","), ready, reason, ageOf(r.Metadata))
	}
	tw.Flush()
}
