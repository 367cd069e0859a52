using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Targets;

/// <summary>Options of <c>-j TPROXY</c> (struct xt_tproxy_target_info_v1).</summary>
public sealed class TproxyData : ExtensionData
{
    /// <summary>The local port to redirect to (0 = the packet's own destination port).</summary>
    public ushort Port;

    /// <summary>The local address to redirect to (0 / :: = the incoming interface's primary address).</summary>
    public UInt128 Address;

    public uint MarkValue;
    public uint MarkMask;
}

/// <summary>
/// <c>-j TPROXY --on-port port [--on-ip addr] [--tproxy-mark value[/mask]]</c> (libxt_TPROXY.c, revision 1).
/// mangle table, PREROUTING only, and the kernel wants <c>-p tcp</c> or <c>-p udp</c> (not inverted).
/// </summary>
public sealed class TproxyTarget : XtExtension<TproxyData>
{
    private const int OnPort = 0, OnIp = 1, Mark = 2;

    public override string Name => "TPROXY";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override IReadOnlyList<string>? Tables { get; } = ["mangle"];

    public override HookMask Hooks => HookMask.Prerouting;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("on-port", OnPort, OptionArg.Required, OptFlags.Mandatory),
        new("on-ip", OnIp),
        new("tproxy-mark", Mark),
    ];

    protected override void Init(ParseContext ctx, TproxyData data) => data.Revision = 1;

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, TproxyData d)
    {
        switch (option.Id)
        {
            case OnPort:
                d.Port = TargetParsing.PortByName(argument!, ctx.Names);
                break;
            case OnIp:
                d.Address = TargetParsing.Host(argument!, ctx.Family, ctx.Names);
                break;
            case Mark:
                (d.MarkValue, d.MarkMask) = TargetParsing.MarkMask(argument!, Name, option.Name);
                break;
        }
    }

    protected override void Save(StringBuilder sb, TproxyData d, IpFamily family)
    {
        sb.Append(" --on-port ").Append(TargetParsing.Dec(d.Port));
        sb.Append(" --on-ip ").Append(IpNet.FormatAddress(d.Address, family));
        sb.Append(" --tproxy-mark ").Append(TargetParsing.Hex(d.MarkValue)).Append('/').Append(TargetParsing.Hex(d.MarkMask));
    }

    protected override void Print(StringBuilder sb, TproxyData d, IpFamily family, bool numeric)
    {
        sb.Append(" TPROXY redirect ").Append(IpNet.FormatAddress(d.Address, family)).Append(':').Append(TargetParsing.Dec(d.Port));
        sb.Append(" mark ").Append(TargetParsing.Hex(d.MarkValue)).Append('/').Append(TargetParsing.Hex(d.MarkMask));
    }

    protected override string? CheckEntry(RuleCheckContext ctx, TproxyData d)
    {
        Rule r = ctx.Rule;
        bool ok = (r.Protocol == Protocols.Tcp || r.Protocol == Protocols.Udp) && !r.ProtocolInverted;
        return ok ? null : RulesetEditor.InvalidArgument;
    }

    /// <summary>
    /// xt_TPROXY.c tproxy_tg4 / tproxy_tg6: the packet is given to an established socket of its connection or to a
    /// transparent listener on --on-ip:--on-port (then marked and accepted). The virtual host has no sockets, so
    /// the kernel finds none and drops the packet.
    /// </summary>
    protected override Verdict Execute(PacketContext ctx, TproxyData data)
    {
        ctx.Note("TPROXY: no socket exists on the virtual host to take the packet; the kernel drops it");
        return Verdict.Drop;
    }
}
