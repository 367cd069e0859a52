using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>What <c>-m ecn</c> tests (XT_ECN_OP_MATCH_IP 0x01, _ECE 0x10, _CWR 0x20).</summary>
[Flags]
public enum EcnOps : byte
{
    None = 0,
    Ip = 0x01,
    Ece = 0x10,
    Cwr = 0x20,
}

/// <summary>Options of <c>-m ecn</c> (struct xt_ecn_info).</summary>
public sealed class EcnData : ExtensionData
{
    public EcnOps Operation;
    public EcnOps Invert;
    public byte IpEct;
}

/// <summary>
/// <c>-m ecn [!] --ecn-tcp-cwr [!] --ecn-tcp-ece [!] --ecn-ip-ect 0..3</c> (libxt_ecn.c, xt_ecn.c). The kernel
/// wants <c>-p tcp</c> (not inverted) for the TCP bits.
/// </summary>
public sealed class EcnMatch : XtExtension<EcnData>
{
    private const int OCwr = 0, OEce = 1, OEct = 2;

    public override string Name => "ecn";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("ecn-tcp-cwr", OCwr, OptionArg.None, OptFlags.Invert),
        new("ecn-tcp-ece", OEce, OptionArg.None, OptFlags.Invert),
        new("ecn-ip-ect", OEct, OptionArg.Required, OptFlags.Invert),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, EcnData d)
    {
        EcnOps op = option.Id switch
        {
            OCwr => EcnOps.Cwr,
            OEce => EcnOps.Ece,
            _ => EcnOps.Ip,
        };
        if (op == EcnOps.Ip) d.IpEct = (byte)XtParse.UIntStrict(argument!, 0, 3, Name, option.Name);
        d.Operation |= op;
        if (invert) d.Invert |= op;
    }

    protected override void FinalCheck(ParseContext ctx, EcnData d)
    {
        if (d.Given == 0) throw ctx.Error("ECN match: some option required");
    }

    protected override string? CheckEntry(RuleCheckContext ctx, EcnData d)
    {
        if ((d.Operation & (EcnOps.Ece | EcnOps.Cwr)) != 0 && (ctx.Rule.Protocol != Protocols.Tcp || ctx.Rule.ProtocolInverted))
            return RulesetEditor.InvalidArgument;
        return null;
    }

    protected override void Save(StringBuilder sb, EcnData d, IpFamily family)
    {
        if ((d.Operation & EcnOps.Ece) != 0)
        {
            if ((d.Invert & EcnOps.Ece) != 0) sb.Append(" !");
            sb.Append(" --ecn-tcp-ece");
        }
        if ((d.Operation & EcnOps.Cwr) != 0)
        {
            if ((d.Invert & EcnOps.Cwr) != 0) sb.Append(" !");
            sb.Append(" --ecn-tcp-cwr");
        }
        if ((d.Operation & EcnOps.Ip) != 0)
        {
            if ((d.Invert & EcnOps.Ip) != 0) sb.Append(" !");
            sb.Append(" --ecn-ip-ect ").Append(XtParse.Dec(d.IpEct));
        }
    }

    protected override void Print(StringBuilder sb, EcnData d, IpFamily family, bool numeric)
    {
        sb.Append(" ECN match");
        if ((d.Operation & EcnOps.Ece) != 0) sb.Append(' ').Append((d.Invert & EcnOps.Ece) != 0 ? "!" : string.Empty).Append("ECE");
        if ((d.Operation & EcnOps.Cwr) != 0) sb.Append(' ').Append((d.Invert & EcnOps.Cwr) != 0 ? "!" : string.Empty).Append("CWR");
        if ((d.Operation & EcnOps.Ip) != 0)
            sb.Append(' ').Append((d.Invert & EcnOps.Ip) != 0 ? "!" : string.Empty).Append("ECT=").Append(XtParse.Dec(d.IpEct));
    }

    /// <summary>
    /// Evaluates the match (xt_ecn.c): the IP ECN bits, then TCP's ECE and CWR. The TCP part reads the header at
    /// the transport offset without looking at the fragment offset (a later IPv4 fragment's data, or for IPv6 the
    /// IPv6 header itself, see <see cref="HeaderReads.ThOff"/>, is read as a TCP header); a header too short just
    /// fails, without a hot drop.
    /// </summary>
    protected override bool Match(PacketContext ctx, EcnData d)
    {
        Packet p = ctx.Packet;
        if ((d.Operation & EcnOps.Ip) != 0
            && ((HeaderReads.DsField(p) & 0x03) == d.IpEct) == ((d.Invert & EcnOps.Ip) != 0)) return false;
        if ((d.Operation & (EcnOps.Ece | EcnOps.Cwr)) == 0) return true;
        if (!HeaderReads.TryTransport(p, TcpHeader.MinLength, out ReadOnlySpan<byte> th)) return false;
        if ((d.Operation & EcnOps.Ece) != 0 && ((th[13] & 0x40) != 0) == ((d.Invert & EcnOps.Ece) != 0)) return false;
        if ((d.Operation & EcnOps.Cwr) != 0 && ((th[13] & 0x80) != 0) == ((d.Invert & EcnOps.Cwr) != 0)) return false;
        return true;
    }
}
