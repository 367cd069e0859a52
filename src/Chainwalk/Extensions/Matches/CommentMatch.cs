using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m comment</c> (struct xt_comment_info).</summary>
public sealed class CommentData : ExtensionData
{
    /// <summary>The comment, at most 255 characters (longer ones are cut, as the 256-byte field does).</summary>
    public string Comment
    {
        get => _text switch
        {
            byte[] ascii => System.Text.Encoding.Latin1.GetString(ascii),
            string s => s,
            _ => string.Empty,
        };
        set => _text = Ascii.IsValid(value) ? System.Text.Encoding.Latin1.GetBytes(value) : value;
    }

    /// <summary>
    /// The comment's text: its bytes when it is ASCII (as a kube-proxy set's per-endpoint comments are: half the size of
    /// the string, and the same text back), else the string. Never written in place: a clone may share it.
    /// </summary>
    private object _text = System.Array.Empty<byte>();

    /// <summary>Writes the comment as iptables-save quotes it, without making its string.</summary>
    internal void SaveTo(StringBuilder sb)
    {
        if (_text is byte[] ascii)
        {
            Span<char> chars = ascii.Length <= 1024 ? stackalloc char[ascii.Length] : new char[ascii.Length];
            System.Text.Encoding.Latin1.GetChars(ascii, chars);
            XtParse.SaveString(sb, chars);
        }
        else XtParse.SaveString(sb, (string)_text);
    }

    /// <summary>Writes the comment to <paramref name="sb"/> without making its string.</summary>
    internal void AppendTo(StringBuilder sb)
    {
        if (_text is byte[] ascii)
        {
            foreach (byte b in ascii) sb.Append((char)b);
        }
        else sb.Append((string)_text);
    }
}

/// <summary><c>-m comment --comment TEXT</c> (libxt_comment.c): never affects matching.</summary>
public sealed class CommentMatch : XtExtension<CommentData>
{
    private const int OComment = 0;
    internal const int MaxLength = 255;

    public CommentMatch() => MatchesEveryPacket = true;

    public override string Name => "comment";

    public override ExtensionKind Kind => ExtensionKind.Match;

    /// <inheritdoc/>
    public override bool SharesEqualData => true;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("comment", OComment, OptionArg.Required, OptFlags.Mandatory),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, CommentData d)
    {
        string text = argument!;
        d.Comment = Truncate(text, MaxLength);
    }

    /// <summary>Cuts a string to the bytes a fixed C buffer holds (UTF-8 byte count, as the kernel stores bytes).</summary>
    internal static string Truncate(string text, int maxBytes)
    {
        if (Encoding.UTF8.GetByteCount(text) <= maxBytes) return text;
        byte[] b = Encoding.UTF8.GetBytes(text);
        return Encoding.UTF8.GetString(b, 0, maxBytes);
    }

    protected override void Save(StringBuilder sb, CommentData d, IpFamily family)
    {
        sb.Append(" --comment");
        d.SaveTo(sb);
    }

    protected override void Print(StringBuilder sb, CommentData d, IpFamily family, bool numeric)
    {
        sb.Append(" /* ");
        d.AppendTo(sb);
        sb.Append(" */");
    }

    /// <summary>A comment always matches (xt_comment.c).</summary>
    protected override bool Match(PacketContext ctx, CommentData d) => true;
}
