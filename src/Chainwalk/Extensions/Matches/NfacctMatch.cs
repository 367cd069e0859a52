using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m nfacct</c> (struct xt_nfacct_match_info).</summary>
public sealed class NfacctData : ExtensionData
{
    /// <summary>The accounting object's name (at most 31 characters).</summary>
    public string ObjectName = string.Empty;
}

/// <summary><c>-m nfacct --nfacct-name NAME</c> (libxt_nfacct.c, xt_nfacct.c): the object must exist.</summary>
public sealed class NfacctMatch : XtExtension<NfacctData>
{
    private const int OName = 0;

    public override string Name => "nfacct";

    public override ExtensionKind Kind => ExtensionKind.Match;


    /// <summary>Its checkentry looks beyond the rule: its accounting objects live on the host.</summary>

    public override bool ChecksSharedObjects => true;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("nfacct-name", OName, OptionArg.Required, OptFlags.Mandatory),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, NfacctData d)
    {
        string arg = argument ?? string.Empty;
        if (arg.Length < 1) throw ctx.Error("Argument must have a minimum length of 1 characters\n");
        if (arg.Contains('\n', StringComparison.Ordinal)) throw ctx.Error("Newlines not allowed in --nfacct-name");
        d.ObjectName = CommentMatch.Truncate(arg, 31);
    }

    /// <summary>nfacct_mt_checkentry: the named object must exist (ENOENT otherwise).</summary>
    protected override string? CheckEntry(RuleCheckContext ctx, NfacctData d) =>
        KernelObjects.Current.NfacctObjects.Contains(d.ObjectName) ? null : "No such file or directory";

    protected override void Save(StringBuilder sb, NfacctData d, IpFamily family)
    {
        sb.Append(" --nfacct-name ");
        XtParse.SaveString(sb, d.ObjectName);
    }

    protected override void Print(StringBuilder sb, NfacctData d, IpFamily family, bool numeric)
    {
        sb.Append(" nfacct-name ");
        XtParse.SaveString(sb, d.ObjectName);
    }

    /// <summary>
    /// xt_nfacct.c: adds the packet (one packet, its IP length in bytes) to the named accounting object and
    /// matches unless the object has a quota it is still under; the host's nfacct objects have no quota
    /// (nfacct.conf keeps none), so the rule always matches. The objects are <see cref="Netfilter.Nfacct"/>.
    /// </summary>
    protected override bool Match(PacketContext ctx, NfacctData d)
    {
        if (ctx.Netfilter.Nfacct?.Find(d.ObjectName) is { } o)
        {
            o.Packets++;
            o.Bytes += (ulong)ctx.Skb.Length;
        }
        return true;
    }
}
