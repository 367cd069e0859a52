using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Targets;

/// <summary>Options of <c>-j CHECKSUM</c> (struct xt_CHECKSUM_info).</summary>
public sealed class ChecksumData : ExtensionData
{
    /// <summary>XT_CHECKSUM_OP_FILL.</summary>
    public bool Fill;
}

/// <summary><c>-j CHECKSUM --checksum-fill</c> (libxt_CHECKSUM.c, xt_CHECKSUM.c): mangle table only.</summary>
public sealed class ChecksumTarget : XtExtension<ChecksumData>
{
    public override string Name => "CHECKSUM";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override IReadOnlyList<string>? Tables => ["mangle"];

    public override IReadOnlyList<XtOption> Options { get; } = [new("checksum-fill", 0, OptionArg.None, OptFlags.Mandatory)];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, ChecksumData d) => d.Fill = true;

    protected override void Save(StringBuilder sb, ChecksumData d, IpFamily family)
    {
        if (d.Fill) sb.Append(" --checksum-fill");
    }

    protected override void Print(StringBuilder sb, ChecksumData d, IpFamily family, bool numeric)
    {
        sb.Append(" CHECKSUM");
        if (d.Fill) sb.Append(" fill");
    }

    /// <summary>
    /// xt_CHECKSUM.c: fills in a checksum left for the device to compute (CHECKSUM_PARTIAL, skb_checksum_help).
    /// Only locally generated packets can be in that state here; Chainwalk models them as offloaded: a local
    /// packet whose upper-layer checksum is not right gets it computed. Received and forwarded packets carry
    /// complete checksums and are left alone.
    /// </summary>
    protected override Verdict Execute(PacketContext ctx, ChecksumData data)
    {
        Packet p = ctx.Packet;
        if (data.Fill && ctx.Skb.Socket is not null && !p.IsFragment && !p.TransportChecksumValid)
        {
            int end = Math.Min(p.TotalLength, p.Bytes.Length);
            byte[] copy = p.Bytes[..end];
            ushort ipcheck = p.Family == IpFamily.V4 ? (ushort)((copy[10] << 8) | copy[11]) : (ushort)0;
            Packet.UpdateChecksums(copy);
            if (p.Family == IpFamily.V4)
            {
                copy[10] = (byte)(ipcheck >> 8);
                copy[11] = (byte)ipcheck;
            }
            copy.CopyTo(p.Bytes, 0);
            ctx.Changed("checksum filled in");
        }
        return Verdict.Continue;
    }
}
