using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m socket</c> (struct xt_socket_mtinfo3).</summary>
public sealed class SocketData : ExtensionData
{
    public bool Transparent;
    public bool NoWildcard;
    public bool RestoreSkMark;
}

/// <summary><c>-m socket</c> revision 3 (libxt_socket.c, xt_socket.c): PREROUTING and INPUT only.</summary>
public sealed class SocketMatch : XtExtension<SocketData>
{
    private const int OTransparent = 0, ONoWildcard = 1, ORestoreSkMark = 2;

    public override string Name => "socket";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override HookMask Hooks => HookMask.Prerouting | HookMask.Input;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("transparent", OTransparent, OptionArg.None),
        new("nowildcard", ONoWildcard, OptionArg.None),
        new("restore-skmark", ORestoreSkMark, OptionArg.None),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, SocketData d)
    {
        switch (option.Id)
        {
            case OTransparent: d.Transparent = true; break;
            case ONoWildcard: d.NoWildcard = true; break;
            default: d.RestoreSkMark = true; break;
        }
    }

    protected override void Save(StringBuilder sb, SocketData d, IpFamily family)
    {
        if (d.Transparent) sb.Append(" --transparent");
        if (d.NoWildcard) sb.Append(" --nowildcard");
        if (d.RestoreSkMark) sb.Append(" --restore-skmark");
    }

    protected override void Print(StringBuilder sb, SocketData d, IpFamily family, bool numeric)
    {
        sb.Append(" socket");
        Save(sb, d, family);
    }

    /// <summary>xt_socket.c: the virtual host has no open sockets, so the socket lookup finds none and the match fails.</summary>
    protected override bool Match(PacketContext ctx, SocketData d) => false;
}
