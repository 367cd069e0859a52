using System.Reflection;
using Chainwalk.Net;

namespace Chainwalk.Extensions;

/// <summary>
/// All extensions Chainwalk knows: adding <c>-m foo</c> is adding one class and its line in <see cref="Create"/> (a test
/// finds every extension class by reflection and fails when one is missing there). Lookup is by name, kind and
/// family, as libxtables' xtables_find_match/xtables_find_target.
/// </summary>
public static class ExtensionRegistry
{
    /// <summary>By name (ordinal); extensions of the same name (a family's own REJECT or ah) in the order of <see cref="Create"/>.</summary>
    private static readonly Lazy<List<XtExtension>> _all = new(() => [.. Create().OrderBy(e => e.Name, StringComparer.Ordinal)]);

    public static IReadOnlyList<XtExtension> All => _all.Value;

    /// <summary>
    /// One instance of each extension class. A list written out rather than found by reflection at run time: listing the
    /// assembly's types and creating them by reflection was ≈ 10 ms of every CLI command that parses a rule (a restore
    /// of 100k rules included; bench/README.md). <see cref="Discover"/> is the reflection form the test compares with.
    /// </summary>
    private static List<XtExtension> Create() =>
    [
        new Matches.AddrtypeMatch(),
        new Matches.Ah6Match(),
        new Matches.AhMatch(),
        new Matches.BpfMatch(),
        new Matches.CgroupMatch(),
        new Matches.ClusterMatch(),
        new Matches.CommentMatch(),
        new Matches.ConnbytesMatch(),
        new Matches.ConnlabelMatch(),
        new Matches.ConnlimitMatch(),
        new Matches.ConnmarkMatch(),
        new Matches.ConntrackMatch(),
        new Matches.CpuMatch(),
        new Matches.DccpMatch(),
        new Matches.DevgroupMatch(),
        new Matches.DscpMatch(),
        new Matches.DstMatch(),
        new Matches.EcnMatch(),
        new Matches.EspMatch(),
        new Matches.Eui64Match(),
        new Matches.FragMatch(),
        new Matches.HashlimitMatch(),
        new Matches.HbhMatch(),
        new Matches.HelperMatch(),
        new Matches.HlMatch(),
        new Matches.Icmp6Match(),
        new Matches.IcmpMatch(),
        new Matches.IpcompMatch(),
        new Matches.IprangeMatch(),
        new Matches.Ipv6headerMatch(),
        new Matches.IpvsMatch(),
        new Matches.LengthMatch(),
        new Matches.LimitMatch(),
        new Matches.MacMatch(),
        new Matches.MarkMatch(),
        new Matches.MhMatch(),
        new Matches.MultiportMatch(),
        new Matches.NfacctMatch(),
        new Matches.OsfMatch(),
        new Matches.OwnerMatch(),
        new Matches.PhysdevMatch(),
        new Matches.PkttypeMatch(),
        new Matches.PolicyMatch(),
        new Matches.QuotaMatch(),
        new Matches.RateestMatch(),
        new Matches.RealmMatch(),
        new Matches.RecentMatch(),
        new Matches.RpfilterMatch(),
        new Matches.RtMatch(),
        new Matches.SctpMatch(),
        new Matches.SetMatch(),
        new Matches.SocketMatch(),
        new Matches.SrhMatch(),
        new Matches.StateMatch(),
        new Matches.StatisticMatch(),
        new Matches.StringMatch(),
        new Matches.TcpMatch(),
        new Matches.TcpmssMatch(),
        new Matches.TimeMatch(),
        new Matches.TosMatch(),
        new Matches.TtlMatch(),
        new Matches.U32Match(),
        new Matches.UdpMatch(),
        new Targets.AuditTarget(),
        new Targets.ChecksumTarget(),
        new Targets.ClassifyTarget(),
        new Targets.ConnmarkTarget(),
        new Targets.ConnsecmarkTarget(),
        new Targets.CtTarget(),
        new Targets.DnatTarget(),
        new Targets.DnptTarget(),
        new Targets.DscpTarget(),
        new Targets.EcnTarget(),
        new Targets.HlTarget(),
        new Targets.HmarkTarget(),
        new Targets.IdletimerTarget(),
        new Targets.LedTarget(),
        new Targets.LogTarget(),
        new Targets.MarkTarget(),
        new Targets.MasqueradeTarget(),
        new Targets.NetmapTarget(),
        new Targets.NflogTarget(),
        new Targets.NfqueueTarget(),
        new Targets.NotrackTarget(),
        new Targets.RateestTarget(),
        new Targets.RedirectTarget(),
        new Targets.RejectTarget(),
        new Targets.Reject6Target(),
        new Targets.SecmarkTarget(),
        new Targets.SetTarget(),
        new Targets.SnatTarget(),
        new Targets.SnptTarget(),
        new Targets.SynproxyTarget(),
        new Targets.TcpmssTarget(),
        new Targets.TcpoptstripTarget(),
        new Targets.TeeTarget(),
        new Targets.TosTarget(),
        new Targets.TproxyTarget(),
        new Targets.TraceTarget(),
        new Targets.TtlTarget(),
    ];

    /// <summary>Every non-abstract extension class with a public parameterless constructor, found by reflection (for the test of <see cref="Create"/>).</summary>
    internal static IEnumerable<Type> Discover() =>
        typeof(XtExtension).Assembly.GetTypes().Where(t => !t.IsAbstract && typeof(XtExtension).IsAssignableFrom(t)
            && t.GetConstructor(BindingFlags.Public | BindingFlags.Instance, Type.EmptyTypes) is not null);

    /// <summary>The first extension of <see cref="All"/> per (name, kind, family): lookups by name without a scan.</summary>
    private static readonly Lazy<Dictionary<(string, ExtensionKind, IpFamily), XtExtension>> _byName = new(() =>
    {
        var d = new Dictionary<(string, ExtensionKind, IpFamily), XtExtension>();
        foreach (XtExtension e in All)
        {
            if ((e.Families & FamilyMask.V4) != 0) d.TryAdd((e.Name, e.Kind, IpFamily.V4), e);
            if ((e.Families & FamilyMask.V6) != 0) d.TryAdd((e.Name, e.Kind, IpFamily.V6), e);
        }
        return d;
    });

    public static XtExtension? Find(string name, ExtensionKind kind, IpFamily family) =>
        _byName.Value.TryGetValue((name, kind, family), out XtExtension? e) ? e : null;

    public static XtExtension? FindMatch(string name, IpFamily family) => Find(name, ExtensionKind.Match, family);

    public static XtExtension? FindTarget(string name, IpFamily family) => Find(name, ExtensionKind.Target, family);
}
