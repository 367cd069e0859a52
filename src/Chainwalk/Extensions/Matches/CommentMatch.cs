using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m comment</c> (struct xt_comment_info).</summary>
/// <remarks>
/// Not sealed only for <see cref="InlineComment{TBytes}"/>, the compact form a restore gives a comment it holds once
/// (<see cref="Compact"/>): the text's bytes in the object itself instead of an array beside it.
/// </remarks>
public class CommentData : ExtensionData
{
    /// <summary>The comment, at most 255 characters (longer ones are cut, as the 256-byte field does).</summary>
    public string Comment
    {
        get => _text switch
        {
            byte[] ascii => System.Text.Encoding.Latin1.GetString(ascii),
            string s => s,
            _ => System.Text.Encoding.Latin1.GetString(Inline),
        };
        set => _text = Ascii.IsValid(value) ? System.Text.Encoding.Latin1.GetBytes(value) : value;
    }

    /// <summary>
    /// The comment's text: its bytes when it is ASCII (as a kube-proxy set's per-endpoint comments are: half the size of
    /// the string, and the same text back), else the string; null only in a compact form, whose text is
    /// <see cref="Inline"/>. Never written in place: a clone may share it.
    /// </summary>
    private object? _text = System.Array.Empty<byte>();

    /// <summary>The text a compact form holds in itself (ASCII without NUL); empty for any other.</summary>
    private protected virtual ReadOnlySpan<byte> Inline => default;

    /// <summary>The ASCII bytes of the text, or null when it is held as a string.</summary>
    private ReadOnlySpan<byte> AsciiBytes(out string? text)
    {
        text = _text as string;
        return _text is byte[] ascii ? ascii : Inline;
    }

    /// <summary>
    /// The same comment in the least room: its bytes inside the object when they are ASCII without NUL and at most 64
    /// (a kube-proxy set's comments: the array beside it costs 24 bytes more); else <paramref name="d"/> itself. The
    /// result reads, saves, lists and clones as <paramref name="d"/> does.
    /// </summary>
    internal static CommentData Compact(CommentData d)
    {
        if (d.GetType() != typeof(CommentData) || d._text is not byte[] ascii || ascii.Length == 0 || ascii.Length > 64 || ascii.AsSpan().Contains((byte)0))
            return d;
        CommentData c = ((ascii.Length + 7) >> 3) switch
        {
            1 => new InlineComment<Bytes8>(ascii),
            2 => new InlineComment<Bytes16>(ascii),
            3 => new InlineComment<Bytes24>(ascii),
            4 => new InlineComment<Bytes32>(ascii),
            5 => new InlineComment<Bytes40>(ascii),
            6 => new InlineComment<Bytes48>(ascii),
            7 => new InlineComment<Bytes56>(ascii),
            _ => new InlineComment<Bytes64>(ascii),
        };
        c._text = null;
        c.Given = d.Given;
        c.Revision = d.Revision;
        return c;
    }

    /// <summary>Writes the comment as iptables-save quotes it, without making its string.</summary>
    internal void SaveTo(StringBuilder sb)
    {
        ReadOnlySpan<byte> ascii = AsciiBytes(out string? text);
        if (text is not null)
        {
            XtParse.SaveString(sb, text);
            return;
        }
        Span<char> chars = ascii.Length <= 1024 ? stackalloc char[ascii.Length] : new char[ascii.Length];
        System.Text.Encoding.Latin1.GetChars(ascii, chars);
        XtParse.SaveString(sb, chars);
    }

    /// <summary>Writes the comment to <paramref name="sb"/> without making its string.</summary>
    internal void AppendTo(StringBuilder sb)
    {
        ReadOnlySpan<byte> ascii = AsciiBytes(out string? text);
        if (text is not null)
        {
            sb.Append(text);
            return;
        }
        foreach (byte b in ascii) sb.Append((char)b);
    }
}

/// <summary>
/// A comment of at most <c>sizeof(TBytes)</c> ASCII bytes held in the object (NUL-padded, as the kernel's
/// <c>char comment[256]</c> is): see <see cref="CommentData.Compact"/>. Setting <see cref="CommentData.Comment"/> on it
/// holds the new text the ordinary way (the inline bytes are then unused).
/// </summary>
internal sealed class InlineComment<TBytes> : CommentData where TBytes : struct
{
    private TBytes _bytes;

    /// <summary>Only for <c>new()</c>; a compact comment is made by <see cref="CommentData.Compact"/>.</summary>
    public InlineComment() { }

    public InlineComment(ReadOnlySpan<byte> ascii) => ascii.CopyTo(All);

    private Span<byte> All => System.Runtime.InteropServices.MemoryMarshal.CreateSpan(ref System.Runtime.CompilerServices.Unsafe.As<TBytes, byte>(ref _bytes), System.Runtime.CompilerServices.Unsafe.SizeOf<TBytes>());

    private protected override ReadOnlySpan<byte> Inline
    {
        get
        {
            Span<byte> all = All;
            int n = all.IndexOf((byte)0);
            return n < 0 ? all : all[..n];
        }
    }
}

#pragma warning disable CA1823, IDE0044, IDE0051 // the inline arrays' element fields are their storage
[System.Runtime.CompilerServices.InlineArray(8)] internal struct Bytes8 { private byte _b; }
[System.Runtime.CompilerServices.InlineArray(16)] internal struct Bytes16 { private byte _b; }
[System.Runtime.CompilerServices.InlineArray(24)] internal struct Bytes24 { private byte _b; }
[System.Runtime.CompilerServices.InlineArray(32)] internal struct Bytes32 { private byte _b; }
[System.Runtime.CompilerServices.InlineArray(40)] internal struct Bytes40 { private byte _b; }
[System.Runtime.CompilerServices.InlineArray(48)] internal struct Bytes48 { private byte _b; }
[System.Runtime.CompilerServices.InlineArray(56)] internal struct Bytes56 { private byte _b; }
[System.Runtime.CompilerServices.InlineArray(64)] internal struct Bytes64 { private byte _b; }
#pragma warning restore CA1823, IDE0044, IDE0051

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
