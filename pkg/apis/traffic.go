package apis

import (
	"fmt"
	"strconv"
)

// ValidateTraffic checks a traffic block as Knative defines it: each target names a revision
// or follows the latest one, percents are 0..100 and sum to 100, tags are unique DNS labels.
func ValidateTraffic(field string, targets []TrafficTarget) FieldErrors {
	var errs FieldErrors
	sum := 0
	tags := map[string]int{}
	for i, t := range targets {
		f := field + "[" + strconv.Itoa(i) + "]"
		latest := t.LatestRevision != nil && *t.LatestRevision
		switch {
		case t.ConfigurationName != "" && t.RevisionName != "":
			errs.add(f+".revisionName", "cannot be set together with configurationName")
		case t.ConfigurationName != "" && !latest:
			errs.add(f+".latestRevision", "must be true for a configurationName target")
		case t.ConfigurationName != "":
		case latest && t.RevisionName != "":
			errs.add(f+".revisionName", "cannot be set together with latestRevision: true")
		case !latest && t.RevisionName == "":
			errs.add(f+".revisionName", "is required unless latestRevision is true")
		case t.RevisionName != "" && !ValidName(t.RevisionName):
			errs.add(f+".revisionName", quote(t.RevisionName)+" is not a valid revision name")
		}
		if t.Percent != nil {
			if *t.Percent < 0 || *t.Percent > 100 {
				errs.add(f+".percent", "must be between 0 and 100")
			}
			sum += *t.Percent
		}
		if t.Tag != "" {
			if !ValidName(t.Tag) {
				errs.add(f+".tag", quote(t.Tag)+" must be a DNS label (lower-case letters, digits, '-')")
			}
			if j, dup := tags[t.Tag]; dup {
				errs.add(f+".tag", fmt.Sprintf("%q is also the tag of %s[%d]", t.Tag, field, j))
			}
			tags[t.Tag] = i
		}
	}
	if len(targets) > 0 && sum != 100 {
		errs.add(field, fmt.Sprintf("percents must sum to 100, not %d", sum))
	}
	return errs
}

// ResolvedTarget is a traffic target with its revision known.
type ResolvedTarget struct {
	RevisionName string
	Latest       bool
	Percent      int
	Tag          string
}

// ResolveTraffic turns a traffic block into concrete revisions: latestRevision targets go to
// latestReady (or, before any revision is ready, to latestCreated, whose requests then wait for
// it). It returns an error naming the first target whose revision does not exist.
func ResolveTraffic(targets []TrafficTarget, latestReady, latestCreated string, exists func(string) bool) ([]ResolvedTarget, error) {
	latest := latestReady
	if latest == "" {
		latest = latestCreated
	}
	out := make([]ResolvedTarget, 0, len(targets))
	for i, t := range targets {
		r := ResolvedTarget{RevisionName: t.RevisionName, Tag: t.Tag}
		if t.Percent != nil {
			r.Percent = *t.Percent
		}
		if t.LatestRevision != nil && *t.LatestRevision {
			r.RevisionName, r.Latest = latest, true
			if latest == "" {
				return nil, fmt.Errorf("spec.traffic[%d]: no revision has been created yet", i)
			}
		} else if !exists(t.RevisionName) {
			return nil, fmt.Errorf("spec.traffic[%d].revisionName: revision %q does not exist", i, t.RevisionName)
		}
		out = append(out, r)
	}
	return out, nil
}
