using Chainwalk.Engine;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Conntrack;

/// <summary>
/// When conntrack runs. In a namespace, nf_conntrack tracks a family's packets only once something calls
/// nf_ct_netns_get for that family: a rule whose match or target needs a connection (state, conntrack,
/// connmark, connbytes, connlimit, connlabel, helper, cluster, CONNMARK, CONNSECMARK, CT, NOTRACK, SYNPROXY,
/// the NAT targets) or a nat table (its chains register NAT, which needs conntrack). A host without such
/// rules is not tracked: every packet's ctstate is INVALID and nothing is kept, as on such a kernel.
/// </summary>
public static class ConntrackLoader
{
    private static readonly HashSet<string> Needing = new(StringComparer.Ordinal)
    {
        "state", "conntrack", "connmark", "connbytes", "connlimit", "connlabel", "helper", "cluster",
        "CONNMARK", "CONNSECMARK", "CT", "NOTRACK", "SYNPROXY", "SNAT", "DNAT", "MASQUERADE", "REDIRECT", "NETMAP",
    };

    /// <summary>Whether the ruleset of one family loads conntrack for that family.</summary>
    public static bool Needs(Ruleset rules)
    {
        foreach (Table t in rules.Tables)
        {
            if (t.Name == "nat") return true;
            foreach (Chain c in t.Chains)
            {
                foreach (Rule r in c.Rules)
                {
                    foreach (MatchUse m in r.Matches)
                    {
                        if (Needing.Contains(m.Extension.Name)) return true;
                    }
                    if (r.Target is { Extension: { } x } && Needing.Contains(x.Name)) return true;
                }
            }
        }
        return false;
    }

    /// <summary>Whether a rule of the ruleset is a connbytes match (its checkentry forces accounting on).</summary>
    public static bool ForcesAccounting(Ruleset rules) =>
        rules.Tables.Any(t => t.Chains.Any(c => c.Rules.Any(r => r.Matches.Any(m => m.Extension.Name == "connbytes"))));

    /// <summary>
    /// Sets <see cref="Netfilter.Conntrack"/> when the host's rules need it (keeping <paramref name="table"/>,
    /// e.g. the one loaded from the host directory), else leaves it null. Returns the hooks or null.
    /// </summary>
    public static ConntrackHooks? Enable(Netfilter netfilter, ConntrackTable? table = null)
    {
        VirtualHost host = netfilter.Host;
        bool v4 = Needs(host.V4), v6 = Needs(host.V6);
        if (!v4 && !v6)
        {
            netfilter.Conntrack = null;
            return null;
        }
        // The interfaces may have gone down or lost addresses since the table was saved: the masquerade notifiers.
        if (table is not null) Nat.NatHooks.ForgetVanishedMasquerades(host, table);
        var hooks = new ConntrackHooks(table)
        {
            TrackV4 = v4,
            TrackV6 = v6,
            ForceAccounting = ForcesAccounting(host.V4) || ForcesAccounting(host.V6),
        };
        netfilter.Conntrack = hooks;
        return hooks;
    }
}
