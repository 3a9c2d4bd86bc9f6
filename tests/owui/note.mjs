// Taken from Open WebUI (yshishenya/open-webui, a fork of open-webui/open-webui) at commit
// 65ebc7c732c2c9bd04e3ddbcd7ef068a99d25af1:
//   src/lib/components/notes/NoteEditor.svelte: the page's state (lines 106, 133-134),
//     init (172-203), noteEventHandler (791-821), and the socket line of onDestroy (856-858)
//   src/lib/components/common/RichTextInput.svelte: where the editor of a note makes its
//     collaboration provider (732-735), gives it the editor (1240) and destroys it
//     (1252-1254)
// Bodies unchanged (copied by line range), but for the module Collaboration.ts is imported
// from (collaboration.mjs here). Around them: svelte stores are the plain stores
// of runtime.mjs; getNoteById answers the note the test names (HTML content, write access);
// the tiptap editor is editor_stub.mjs; toast and goto are runtime.mjs's recorders.
import { observedSocket, tick } from './runtime.mjs';
import { EditorStub } from './editor_stub.mjs';
import { yXmlFragmentToProsemirrorJSON } from 'y-prosemirror';

export function mountNote(ctx) {
	const { stores, api, toast, goto, localStorage, document, report } = ctx;
	const { socket, user } = stores;
	const { getNoteById } = api;

	let $socket, $user;
	user.subscribe((v) => ($user = v));
	let id = ctx.noteId; // export let id

	// what the page shows, after each event it handled (and on request)
	const snapshot = () => ({
		note_id: id,
		title: note?.title ?? null,
		files: files,
		text: editor ? editor.lines().join('\n') : null,
		synced: provider?.synced ?? false,
		awareness: provider ? Object.fromEntries(provider.awareness.getStates()) : {},
		client_id: provider?.doc.clientID ?? null,
		// the note as y-prosemirror serialises it (not part of the page: the test compares
		// it with what the hub tells the app)
		prosemirror: provider
			? yXmlFragmentToProsemirrorJSON(provider.doc.getXmlFragment('prosemirror'))
			: null
	});
	socket.subscribe((v) => ($socket = v && observedSocket(v, 'note', snapshot, report)));

	// RichTextInput's
	let provider = null;
	let editor = null;
	let content = null;
	let mdValue = '';
	let htmlValue = '';
	let jsonValue = '';

	// -- src/lib/components/notes/NoteEditor.svelte ------------------------------------
	let note = null;
	let files = [];
	let messages = [];

	let loading = false;

	const init = async () => {
		loading = true;
		const res = await getNoteById(localStorage.token, id).catch((error) => {
			toast.error(`${error}`);
			return null;
		});

		messages = [];

		if (res) {
			note = res;
			if (!Array.isArray(note?.access_grants)) {
				note.access_grants = [];
			}
			files = res.data.files || [];

			if (note?.write_access) {
				$socket?.emit('join-note', {
					note_id: id,
					auth: {
						token: localStorage.token
					}
				});
				$socket?.on('note-events', noteEventHandler);
			}
		} else {
			goto('/');
			return;
		}

		loading = false;
	};

	const noteEventHandler = async (_note) => {
		console.log('noteEventHandler', _note);
		if (_note.id !== id) return;

		if (_note.access_grants && _note.access_grants !== note.access_grants) {
			note.access_grants = _note.access_grants;
		}

		if (_note.data && _note.data.files) {
			files = _note.data.files;
			note.data.files = files;
		}

		if (_note.title && _note.title) {
			note.title = _note.title;
		}

		editor.storage.files = files;
		await tick();

		for (const file of files) {
			if (file.type === 'image' || (file?.content_type ?? '').startsWith('image/')) {
				const e = new CustomEvent('data', { files: files });

				const img = document.getElementById(`image:${file.id}`);
				if (img) {
					img.dispatchEvent(e);
				}
			}
		}
	};

	// -- the page opens: init(), then the editor (RichTextInput's onMount) once the note is in
	const mount = async () => {
		await init();
		if (!note) return;
		content = note.data.content.html;
		// RichTextInput's props: socket={$socket} user={$user} documentId={`note:${note.id}`}
		const socket = $socket;
		const user = $user;
		const documentId = `note:${note.id}`;
		const collaboration = true;

		// -- src/lib/components/common/RichTextInput.svelte ----------------------------
		if (collaboration && documentId && socket && user) {
			const { SocketIOCollaborationProvider } = await import('./collaboration.mjs');
			provider = new SocketIOCollaborationProvider(documentId, socket, user, content);
		}
		editor = new EditorStub(provider.doc, provider.awareness);
		// RichTextInput's onUpdate keeps the values the provider sends along with each update
		provider.doc.on('update', () => {
			const lines = editor.lines();
			mdValue = lines.join('\n\n');
			htmlValue = lines.map((line) => `<p>${line}</p>`).join('');
			jsonValue = {
				type: 'doc',
				content: lines.map((text) => ({
					type: 'paragraph',
					...(text ? { content: [{ type: 'text', text }] } : {})
				}))
			};
		});
		provider?.setEditor(editor, () => ({ md: mdValue, html: htmlValue, json: jsonValue }));
	};

	const destroy = () => {
		// NoteEditor's onDestroy
		$socket?.off('note-events', noteEventHandler);
		// RichTextInput's onDestroy
		if (provider) {
			provider.destroy();
		}
	};

	// what the user does in the editor
	const type = (text, where) => editor.type(text, where);

	return { mount, destroy, type, snapshot };
}
