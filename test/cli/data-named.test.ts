/** `moco-cxr data` on the named sources (nih:, vindr:, mimic:, padchest:), spawned, on small trees in their layouts. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { writeGreyImage } from '../helpers/images.js';

const root = mkdtempSync(join(tmpdir(), 'moco-cxr-data-named-'));
after(() => rmSync(root, { recursive: true, force: true }));

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', 'data', ...args], {
    encoding: 'utf8',
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

interface Report {
  kind: string;
  images: number;
  patients: number;
  patientRule: string;
  studies: number;
  labels: Record<string, { positive: number; negative: number; masked: number }>;
  views: Record<string, number>;
  projections: Record<string, number>;
  probe: { probed: number; unreadable: { id: string; error: string }[] };
}

test('data nih:... reports findings, patients from the Patient ID column, and the split', async () => {
  const folder = join(root, 'nih');
  mkdirSync(folder);
  writeFileSync(
    join(folder, 'Data_Entry_2017.csv'),
    [
      'Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]',
      '00000001_000.png,Cardiomegaly,0,1,57,M,PA,2682,2749,0.143,0.143',
      '00000001_001.png,Cardiomegaly|Emphysema,1,1,58,M,PA,2894,2729,0.143,0.143',
      '00000002_000.png,No Finding,0,2,81,M,AP,2500,2048,0.171,0.171',
    ].join('\n'),
  );
  writeFileSync(join(folder, 'test_list.txt'), '00000002_000.png\n');
  for (const name of ['00000001_000.png', '00000001_001.png', '00000002_000.png']) {
    await writeGreyImage(join(folder, 'images_001', 'images', name));
  }
  const { status, stdout, stderr } = cli(`nih:${join(folder, 'Data_Entry_2017.csv')}`, '--json');
  assert.equal(status, 0, stderr);
  const report = JSON.parse(stdout) as Report;
  assert.equal(report.kind, 'nih');
  assert.equal(report.images, 3);
  assert.equal(report.patients, 2);
  assert.equal(report.studies, 3);
  assert.match(report.patientRule, /column 'Patient ID'/);
  assert.deepEqual(report.labels['Cardiomegaly'], { positive: 2, negative: 1, masked: 0 });
  assert.deepEqual(report.views, { frontal: 3 });
  assert.deepEqual(report.projections, { PA: 2, AP: 1 });
  assert.equal(report.probe.probed, 3);
  assert.deepEqual(report.probe.unreadable, []);

  const text = cli(`nih:${folder}`, '--split', 'test');
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /^images {7}1$/m);
  assert.match(text.stdout, /^patients {5}1 \(column 'Patient ID', studies by 'Follow-up #'\)$/m);
});

test('data vindr:... applies --min-readers and says each image is its own patient', () => {
  const folder = join(root, 'vindr');
  mkdirSync(folder);
  writeFileSync(
    join(folder, 'train.csv'),
    [
      'image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max',
      'a1,Cardiomegaly,3,R8,691.0,1375.0,1653.0,1831.0',
      'a1,Cardiomegaly,3,R9,690.0,1370.0,1655.0,1835.0',
      'b2,Cardiomegaly,3,R1,691.0,1375.0,1653.0,1831.0',
      'b2,No finding,14,R2,,,,',
    ].join('\n'),
  );
  const { status, stdout, stderr } = cli(`vindr:${join(folder, 'train.csv')}`, '--min-readers', '2', '--json');
  assert.equal(status, 0, stderr);
  const report = JSON.parse(stdout) as Report;
  assert.equal(report.kind, 'vindr');
  assert.deepEqual(report.labels['Cardiomegaly'], { positive: 1, negative: 1, masked: 0 });
  assert.equal(report.patients, 2);
  assert.match(report.patientRule, /^one per image/);
  assert.deepEqual(
    report.probe.unreadable.map((u) => u.id),
    ['a1', 'b2'],
  );
});

test('data mimic:... joins study labels to images and reads the split', async () => {
  const folder = join(root, 'mimic');
  mkdirSync(folder);
  const observations =
    'Atelectasis,Cardiomegaly,Consolidation,Edema,Enlarged Cardiomediastinum,Fracture,Lung Lesion,Lung Opacity,' +
    'No Finding,Pleural Effusion,Pleural Other,Pneumonia,Pneumothorax,Support Devices';
  writeFileSync(
    join(folder, 'mimic-cxr-2.0.0-chexpert.csv'),
    `subject_id,study_id,${observations}\n10000032,50414267,,1.0,,,,,,,,-1.0,,,,\n`,
  );
  writeFileSync(
    join(folder, 'mimic-cxr-2.0.0-metadata.csv'),
    [
      'dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,StudyTime,ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,PatientOrientationCodeSequence_CodeMeaning',
      '02aa804e-bde0afdd-112c0b34-7bc16630-4e384014,10000032,50414267,CHEST (PA AND LAT),PA,3056,2544,21800506,213014.531,CHEST (PA AND LAT),postero-anterior,Erect',
      '174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962,10000032,50414267,CHEST (PA AND LAT),LATERAL,3056,2544,21800506,213014.531,CHEST (PA AND LAT),lateral,Erect',
    ].join('\n'),
  );
  writeFileSync(
    join(folder, 'mimic-cxr-2.0.0-split.csv'),
    'dicom_id,study_id,subject_id,split\n02aa804e-bde0afdd-112c0b34-7bc16630-4e384014,50414267,10000032,validate\n174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962,50414267,10000032,validate\n',
  );
  await writeGreyImage(
    join(folder, 'files', 'p10', 'p10000032', 's50414267', '02aa804e-bde0afdd-112c0b34-7bc16630-4e384014.jpg'),
  );
  const { status, stdout, stderr } = cli(`mimic:${folder}`, '--split', 'validate', '--frontal');
  assert.equal(status, 0, stderr);
  assert.match(stdout, /^images {7}1$/m);
  assert.match(stdout, /^patients {5}1 \(column 'subject_id', studies by 'study_id'\)$/m);
  assert.match(stdout, /^projections {2}PA 1$/m);
  assert.match(stdout, /^ {2}Pleural Effusion +0 +0 +1 +0$/m);
  assert.match(stdout, /^unreadable {5}0$/m);
});

test('data padchest:... takes the label strings as tasks and filters by view', async () => {
  const folder = join(root, 'padchest');
  const header =
    ',ImageID,ImageDir,StudyDate_DICOM,StudyID,PatientID,PatientBirth,PatientSex_DICOM,ViewPosition_DICOM,Projection,MethodProjection,Pediatric,Modality_DICOM,Manufacturer_DICOM,PhotometricInterpretation_DICOM,PixelRepresentation_DICOM,PixelAspectRatio_DICOM,SpatialResolution_DICOM,BitsStored_DICOM,WindowCenter_DICOM,WindowWidth_DICOM,Rows_DICOM,Columns_DICOM,XRayTubeCurrent_DICOM,Exposure_DICOM,ExposureInuAs_DICOM,ExposureTime,RelativeXRayExposure_DICOM,ReportID,Report,MethodLabel,Labels,Localizations,LabelsLocalizationsBySentence,labelCUIS,LocalizationsCUIS';
  const row = (i: number, image: string, projection: string, labels: string): string =>
    `${i},${image},0,20150311,s${i},p1,1939.0,M,POSTEROANTERIOR,${projection},Manual review of DICOM fields,No,CR,Philips,MONOCHROME2,0,1,0.139,12,2048,4095,2446,2010,,,,,,${i},sin hallazgos,Physician,"${labels}",[],[],[],[]`;
  mkdirSync(folder);
  writeFileSync(
    join(folder, 'PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv'),
    [header, row(0, 'a.png', 'PA', "['pneumonia', 'COPD signs']"), row(1, 'b.png', 'L', "['normal']")].join('\n'),
  );
  await writeGreyImage(join(folder, '0', 'b.png'), { bits: 16 });
  const { status, stdout, stderr } = cli(`padchest:${folder}`, '--view', 'lateral', '--json');
  assert.equal(status, 0, stderr);
  const report = JSON.parse(stdout) as Report & { tasks: string[]; probe: { depths: Record<string, number> } };
  assert.deepEqual(report.tasks, ['COPD signs', 'pneumonia']);
  assert.equal(report.images, 1);
  assert.deepEqual(report.views, { lateral: 1 });
  assert.deepEqual(report.labels['pneumonia'], { positive: 0, negative: 1, masked: 0 });
  assert.deepEqual(report.probe.depths, { '16-bit': 1 });
});

test('data --patient-pattern takes patients from the ids, and says so', async () => {
  const folder = join(root, 'own');
  for (const name of ['YES/P12_scan1.png', 'YES/P12_scan2.png', 'NO/P7_scan1.png']) {
    await writeGreyImage(join(folder, name));
  }
  const { status, stdout, stderr } = cli(`folder:${folder}`, '--patient-pattern', '/(P\\d+)_', '--probe', '0');
  assert.equal(status, 0, stderr);
  assert.match(stdout, /^patients {5}2 \(pattern '\/\(P\\d\+\)_' on the image ids\)$/m);
});

test('data: a bad source flag is named, and --help lists the source options from the table', () => {
  const bad = cli('phantom:4', '--patient-pattern', 'P\\d+');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /--patient-pattern 'P\\d\+' has no capture group/);
  const help = cli('--help');
  assert.equal(help.status, 0);
  for (const flag of ['--split NAME', '--min-readers N', '--view frontal,lateral', '--patient-pattern REGEX']) {
    assert.ok(help.stdout.includes(`  ${flag}`), flag);
  }
  assert.match(help.stdout, /^ {2}nih {7}NIH ChestX-ray14/m);
});
