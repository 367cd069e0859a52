using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Targets;

/// <summary>Options of <c>-j TEE</c> (struct xt_tee_tginfo).</summary>
public sealed class TeeData : ExtensionData
{
    /// <summary>The gateway the clone is routed through.</summary>
    public UInt128 Gateway;

    /// <summary>The output interface to route by ("" = none); at most 15 characters.</summary>
    public string OutInterface = string.Empty;
}

/// <summary>
/// <c>-j TEE --gateway addr [--oif name]</c> (libxt_TEE.c revision 1, xt_TEE.c): clone the packet to a
/// gateway. Any table and hook; the kernel refuses the zero address.
/// </summary>
public sealed class TeeTarget : XtExtension<TeeData>
{
    private const int GatewayId = 0, OifId = 1;

    public override string Name => "TEE";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("gateway", GatewayId, OptionArg.Required, OptFlags.Mandatory),
        new("oif", OifId),
    ];

    protected override void Init(ParseContext ctx, TeeData data) => data.Revision = 1;

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, TeeData d)
    {
        if (option.Id == GatewayId)
        {
            d.Gateway = TargetParsing.Host(argument!, ctx.Family, ctx.Names);
        }
        else
        {
            string s = argument!;
            d.OutInterface = s.Length > 15 ? s[..15] : s;
        }
    }

    protected override void Save(StringBuilder sb, TeeData d, IpFamily family)
    {
        sb.Append(" --gateway ").Append(IpNet.FormatAddress(d.Gateway, family));
        if (d.OutInterface.Length > 0) sb.Append(" --oif ").Append(d.OutInterface);
    }

    protected override void Print(StringBuilder sb, TeeData d, IpFamily family, bool numeric)
    {
        string gw = numeric ? IpNet.FormatAddress(d.Gateway, family) : ListWriter.AddressToAnyName(d.Gateway, family, NameDb.Printing);
        sb.Append(" TEE gw:").Append(gw);
        if (d.OutInterface.Length > 0) sb.Append(" oif=").Append(d.OutInterface);
    }

    protected override string? CheckEntry(RuleCheckContext ctx, TeeData d) =>
        d.Gateway == UInt128.Zero ? RulesetEditor.InvalidArgument : null;

    /// <summary>
    /// xt_TEE.c tee_tg4 / tee_tg6 (nf_dup_ipv4.c, nf_dup_ipv6.c): a copy of the packet, untracked and without its
    /// socket, its TTL / hop limit lowered by one when duplicated at PREROUTING or INPUT, IPv4 copies with DF set, is routed to the gateway
    /// (by --oif when given) and sent out through OUTPUT and POSTROUTING; a copy is never copied again. Without a
    /// route there is no copy. The original continues.
    /// </summary>
    protected override Verdict Execute(PacketContext ctx, TeeData data)
    {
        if (ctx.Duplicating) return Verdict.Continue;
        Skb clone = ctx.Skb.Clone();
        clone.Conntrack = null;
        clone.CtInfo = CtInfo.Untracked;
        clone.Socket = null;
        clone.PacketType = PacketType.Outgoing;
        bool early = ctx.Hook is Rules.Hook.Prerouting or Rules.Hook.Input;
        byte[] b = clone.Bytes;
        if (clone.Family == IpFamily.V4)
        {
            // nf_dup_ipv4 sets DF on every IPv4 copy (so the sender hears of a smaller MTU on the copy's way),
            // lowers the TTL at PREROUTING / INPUT, and recomputes the header checksum.
            b[6] |= 0x40;
            if (early) b[8]--;
            Ipv4Header.TryCreate(b, out Ipv4Header ip);
            ip.UpdateChecksum();
        }
        else if (early)
        {
            b[7]--;
        }
        clone.Reparse();
        string? oif = data.OutInterface.Length == 0 || ctx.Host.FindLink(data.OutInterface) is null ? null : data.OutInterface;
        if (!ctx.SendDuplicate(clone, data.Gateway, oif)) ctx.Note("TEE: no route to the gateway; no copy sent");
        return Verdict.Continue;
    }
}
