using System.Reflection;
using Chainwalk.Net;

namespace Chainwalk.Extensions;

/// <summary>
/// All extensions Chainwalk knows: adding <c>-m foo</c> is adding one class and its line in <see cref="Factories"/> (a test
/// finds every extension class by reflection and fails when one is missing there). Lookup is by name, kind and family, as
/// libxtables' xtables_find_match/xtables_find_target.
/// </summary>
public static class ExtensionRegistry
{
    /// <summary>
    /// Each extension name's factory: one instance of each extension class called that name, in a fixed order where two
    /// share a name (a family's own REJECT or ah). Written out rather than found by reflection, and made per name rather
    /// than all at once: listing the assembly's types and creating them by reflection was ≈ 10 ms of every CLI command
    /// that parses a rule, and creating all 100 (their types loaded, their option tables built) still ≈ 5 % of a restore
    /// of 100k rules that uses one of them (bench/README.md). <see cref="Discover"/> is the reflection form the tests
    /// compare with.
    /// </summary>
    private static readonly Dictionary<string, Func<XtExtension[]>> Factories = new(StringComparer.Ordinal)
    {
        ["AUDIT"] = () => [new Targets.AuditTarget()],
        ["CHECKSUM"] = () => [new Targets.ChecksumTarget()],
        ["CLASSIFY"] = () => [new Targets.ClassifyTarget()],
        ["CONNMARK"] = () => [new Targets.ConnmarkTarget()],
        ["CONNSECMARK"] = () => [new Targets.ConnsecmarkTarget()],
        ["CT"] = () => [new Targets.CtTarget()],
        ["DNAT"] = () => [new Targets.DnatTarget()],
        ["DNPT"] = () => [new Targets.DnptTarget()],
        ["DSCP"] = () => [new Targets.DscpTarget()],
        ["ECN"] = () => [new Targets.EcnTarget()],
        ["HL"] = () => [new Targets.HlTarget()],
        ["HMARK"] = () => [new Targets.HmarkTarget()],
        ["IDLETIMER"] = () => [new Targets.IdletimerTarget()],
        ["LED"] = () => [new Targets.LedTarget()],
        ["LOG"] = () => [new Targets.LogTarget()],
        ["MARK"] = () => [new Targets.MarkTarget()],
        ["MASQUERADE"] = () => [new Targets.MasqueradeTarget()],
        ["NETMAP"] = () => [new Targets.NetmapTarget()],
        ["NFLOG"] = () => [new Targets.NflogTarget()],
        ["NFQUEUE"] = () => [new Targets.NfqueueTarget()],
        ["NOTRACK"] = () => [new Targets.NotrackTarget()],
        ["RATEEST"] = () => [new Targets.RateestTarget()],
        ["REDIRECT"] = () => [new Targets.RedirectTarget()],
        ["REJECT"] = () => [new Targets.RejectTarget(), new Targets.Reject6Target()],
        ["SECMARK"] = () => [new Targets.SecmarkTarget()],
        ["SET"] = () => [new Targets.SetTarget()],
        ["SNAT"] = () => [new Targets.SnatTarget()],
        ["SNPT"] = () => [new Targets.SnptTarget()],
        ["SYNPROXY"] = () => [new Targets.SynproxyTarget()],
        ["TCPMSS"] = () => [new Targets.TcpmssTarget()],
        ["TCPOPTSTRIP"] = () => [new Targets.TcpoptstripTarget()],
        ["TEE"] = () => [new Targets.TeeTarget()],
        ["TOS"] = () => [new Targets.TosTarget()],
        ["TPROXY"] = () => [new Targets.TproxyTarget()],
        ["TRACE"] = () => [new Targets.TraceTarget()],
        ["TTL"] = () => [new Targets.TtlTarget()],
        ["addrtype"] = () => [new Matches.AddrtypeMatch()],
        ["ah"] = () => [new Matches.Ah6Match(), new Matches.AhMatch()],
        ["bpf"] = () => [new Matches.BpfMatch()],
        ["cgroup"] = () => [new Matches.CgroupMatch()],
        ["cluster"] = () => [new Matches.ClusterMatch()],
        ["comment"] = () => [new Matches.CommentMatch()],
        ["connbytes"] = () => [new Matches.ConnbytesMatch()],
        ["connlabel"] = () => [new Matches.ConnlabelMatch()],
        ["connlimit"] = () => [new Matches.ConnlimitMatch()],
        ["connmark"] = () => [new Matches.ConnmarkMatch()],
        ["conntrack"] = () => [new Matches.ConntrackMatch()],
        ["cpu"] = () => [new Matches.CpuMatch()],
        ["dccp"] = () => [new Matches.DccpMatch()],
        ["devgroup"] = () => [new Matches.DevgroupMatch()],
        ["dscp"] = () => [new Matches.DscpMatch()],
        ["dst"] = () => [new Matches.DstMatch()],
        ["ecn"] = () => [new Matches.EcnMatch()],
        ["esp"] = () => [new Matches.EspMatch()],
        ["eui64"] = () => [new Matches.Eui64Match()],
        ["frag"] = () => [new Matches.FragMatch()],
        ["hashlimit"] = () => [new Matches.HashlimitMatch()],
        ["hbh"] = () => [new Matches.HbhMatch()],
        ["helper"] = () => [new Matches.HelperMatch()],
        ["hl"] = () => [new Matches.HlMatch()],
        ["icmp"] = () => [new Matches.IcmpMatch()],
        ["icmp6"] = () => [new Matches.Icmp6Match()],
        ["ipcomp"] = () => [new Matches.IpcompMatch()],
        ["iprange"] = () => [new Matches.IprangeMatch()],
        ["ipv6header"] = () => [new Matches.Ipv6headerMatch()],
        ["ipvs"] = () => [new Matches.IpvsMatch()],
        ["length"] = () => [new Matches.LengthMatch()],
        ["limit"] = () => [new Matches.LimitMatch()],
        ["mac"] = () => [new Matches.MacMatch()],
        ["mark"] = () => [new Matches.MarkMatch()],
        ["mh"] = () => [new Matches.MhMatch()],
        ["multiport"] = () => [new Matches.MultiportMatch()],
        ["nfacct"] = () => [new Matches.NfacctMatch()],
        ["osf"] = () => [new Matches.OsfMatch()],
        ["owner"] = () => [new Matches.OwnerMatch()],
        ["physdev"] = () => [new Matches.PhysdevMatch()],
        ["pkttype"] = () => [new Matches.PkttypeMatch()],
        ["policy"] = () => [new Matches.PolicyMatch()],
        ["quota"] = () => [new Matches.QuotaMatch()],
        ["rateest"] = () => [new Matches.RateestMatch()],
        ["realm"] = () => [new Matches.RealmMatch()],
        ["recent"] = () => [new Matches.RecentMatch()],
        ["rpfilter"] = () => [new Matches.RpfilterMatch()],
        ["rt"] = () => [new Matches.RtMatch()],
        ["sctp"] = () => [new Matches.SctpMatch()],
        ["set"] = () => [new Matches.SetMatch()],
        ["socket"] = () => [new Matches.SocketMatch()],
        ["srh"] = () => [new Matches.SrhMatch()],
        ["state"] = () => [new Matches.StateMatch()],
        ["statistic"] = () => [new Matches.StatisticMatch()],
        ["string"] = () => [new Matches.StringMatch()],
        ["tcp"] = () => [new Matches.TcpMatch()],
        ["tcpmss"] = () => [new Matches.TcpmssMatch()],
        ["time"] = () => [new Matches.TimeMatch()],
        ["tos"] = () => [new Matches.TosMatch()],
        ["ttl"] = () => [new Matches.TtlMatch()],
        ["u32"] = () => [new Matches.U32Match()],
        ["udp"] = () => [new Matches.UdpMatch()],
    };

    /// <summary>
    /// Every extension's name, in ordinal order (a name two classes share, once): <see cref="All"/> is their
    /// extensions in this order, each name's in the order its factory gives.
    /// </summary>
    private static readonly string[] Names = [.. Factories.Keys.Order(StringComparer.Ordinal)];

    private static readonly Lazy<List<XtExtension>> _all = new(() =>
    {
        var all = new List<XtExtension>();
        foreach (string name in Names) all.AddRange(Named(name) ?? throw new InvalidOperationException($"extension {name} is listed but not created"));
        return all;
    });

    public static IReadOnlyList<XtExtension> All => _all.Value;

    /// <summary>The extensions made so far, by name (each made once, on its first lookup or by <see cref="All"/>).</summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, XtExtension[]> _made = new(StringComparer.Ordinal);

    /// <summary>The extensions called <paramref name="name"/> (ordinal), made on first use; null for a name no extension has.</summary>
    private static XtExtension[]? Named(string name)
    {
        if (_made.TryGetValue(name, out XtExtension[]? made)) return made;
        XtExtension[]? created = Create(name);
        return created is null ? null : _made.GetOrAdd(name, created);
    }

    /// <summary>One instance of each extension class called <paramref name="name"/> (its factory's), or null.</summary>
    private static XtExtension[]? Create(string name) => Factories.TryGetValue(name, out Func<XtExtension[]>? make) ? make() : null;

    /// <summary>Every non-abstract extension class with a public parameterless constructor, found by reflection (for the test of <see cref="Create"/>).</summary>
    internal static IEnumerable<Type> Discover() =>
        typeof(XtExtension).Assembly.GetTypes().Where(t => !t.IsAbstract && typeof(XtExtension).IsAssignableFrom(t)
            && t.GetConstructor(BindingFlags.Public | BindingFlags.Instance, Type.EmptyTypes) is not null);

    /// <summary>The first extension of <see cref="All"/> with this name, kind and family (libxtables' lookup).</summary>
    public static XtExtension? Find(string name, ExtensionKind kind, IpFamily family)
    {
        if (Named(name) is not { } named) return null;
        FamilyMask mask = family == IpFamily.V4 ? FamilyMask.V4 : FamilyMask.V6;
        foreach (XtExtension e in named)
        {
            if (e.Kind == kind && (e.Families & mask) != 0) return e;
        }
        return null;
    }

    public static XtExtension? FindMatch(string name, IpFamily family) => Find(name, ExtensionKind.Match, family);

    public static XtExtension? FindTarget(string name, IpFamily family) => Find(name, ExtensionKind.Target, family);
}
