package s3cache

import (
	"fmt"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// TestMergeAbortRule checks how the rule is merged with a bucket's own
// rules: added after them, replaced in place when it has other settings,
// left alone when it (or a rule of the bucket's, for the whole bucket)
// already aborts uploads; the other rules never change.
func TestMergeAbortRule(t *testing.T) {
	rule := func(id string, prefix *string, days int32, enabled bool) types.LifecycleRule {
		r := types.LifecycleRule{ID: aws.String(id), Status: types.ExpirationStatusDisabled}
		if enabled {
			r.Status = types.ExpirationStatusEnabled
		}
		if prefix != nil {
			r.Filter = &types.LifecycleRuleFilter{Prefix: prefix}
		}
		if days > 0 {
			r.AbortIncompleteMultipartUpload = &types.AbortIncompleteMultipartUpload{DaysAfterInitiation: aws.Int32(days)}
		}
		return r
	}
	expire := types.LifecycleRule{ID: aws.String("user-tmp"), Status: types.ExpirationStatusEnabled,
		Filter: &types.LifecycleRuleFilter{Prefix: aws.String("tmp/")}, Expiration: &types.LifecycleExpiration{Days: aws.Int32(3)}}
	tagged := types.LifecycleRule{ID: aws.String("user-tagged"), Status: types.ExpirationStatusEnabled,
		Filter:                         &types.LifecycleRuleFilter{Tag: &types.Tag{Key: aws.String("k"), Value: aws.String("v")}},
		AbortIncompleteMultipartUpload: &types.AbortIncompleteMultipartUpload{DaysAfterInitiation: aws.Int32(2)}}
	ours := func(days int32) types.LifecycleRule { return rule(AbortMultipartRuleID, aws.String(""), days, true) }
	for _, tc := range []struct {
		name  string
		rules []types.LifecycleRule
		want  []types.LifecycleRule // nil: nothing to write
		rule  AbortRule
	}{
		{"no rules", nil, []types.LifecycleRule{ours(1)}, AbortRule{ID: AbortMultipartRuleID, Days: 1, Change: RuleAdded}},
		{"the bucket's rules are kept", []types.LifecycleRule{expire, tagged},
			[]types.LifecycleRule{expire, tagged, ours(1)}, AbortRule{ID: AbortMultipartRuleID, Days: 1, Change: RuleAdded}},
		{"ours already there", []types.LifecycleRule{expire, ours(1)}, nil, AbortRule{ID: AbortMultipartRuleID, Days: 1, Change: RuleKept}},
		{"ours without a filter", []types.LifecycleRule{rule(AbortMultipartRuleID, nil, 1, true)}, nil,
			AbortRule{ID: AbortMultipartRuleID, Days: 1, Change: RuleKept}},
		{"ours with other days", []types.LifecycleRule{ours(7), expire},
			[]types.LifecycleRule{ours(1), expire}, AbortRule{ID: AbortMultipartRuleID, Days: 1, Change: RuleUpdated, WasDays: 7}},
		{"ours disabled", []types.LifecycleRule{rule(AbortMultipartRuleID, aws.String(""), 1, false)},
			[]types.LifecycleRule{ours(1)}, AbortRule{ID: AbortMultipartRuleID, Days: 1, Change: RuleUpdated}},
		{"the bucket's own abort rule", []types.LifecycleRule{rule("mine", nil, 5, true)}, nil,
			AbortRule{ID: "mine", Days: 5, Change: RuleKept}},
		{"a prefix or tag rule does not cover the bucket", []types.LifecycleRule{rule("nar-only", aws.String("nar/"), 5, true), tagged},
			[]types.LifecycleRule{rule("nar-only", aws.String("nar/"), 5, true), tagged, ours(1)}, AbortRule{ID: AbortMultipartRuleID, Days: 1, Change: RuleAdded}},
		{"a disabled abort rule of the bucket's", []types.LifecycleRule{rule("off", nil, 5, false)},
			[]types.LifecycleRule{rule("off", nil, 5, false), ours(1)}, AbortRule{ID: AbortMultipartRuleID, Days: 1, Change: RuleAdded}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.rules)
			got, r := mergeAbortRule(in, 1)
			if r != tc.rule {
				t.Errorf("rule = %+v, want %+v", r, tc.rule)
			}
			if describe(got) != describe(tc.want) {
				t.Errorf("rules = %s, want %s", describe(got), describe(tc.want))
			}
			if describe(in) != describe(tc.rules) {
				t.Errorf("the input was changed: %s", describe(in))
			}
		})
	}
}

// describe prints rules for comparison.
func describe(rules []types.LifecycleRule) string {
	if rules == nil {
		return "nil"
	}
	s := ""
	for _, r := range rules {
		s += "[" + aws.ToString(r.ID) + " " + string(r.Status)
		if r.Filter != nil {
			s += " prefix=" + aws.ToString(r.Filter.Prefix)
			if r.Filter.Tag != nil {
				s += " tag=" + aws.ToString(r.Filter.Tag.Key)
			}
		}
		if r.Expiration != nil {
			s += fmt.Sprint(" expire=", aws.ToInt32(r.Expiration.Days))
		}
		if r.AbortIncompleteMultipartUpload != nil {
			s += fmt.Sprint(" abort=", aws.ToInt32(r.AbortIncompleteMultipartUpload.DaysAfterInitiation))
		}
		s += "]"
	}
	return s
}
